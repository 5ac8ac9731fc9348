"""The task's mean input length that budget_pruning counts MACs at, against independent counts.

On real data (skipped without it): rt-polarity with minilm-l6's tokenizer (27 tokens, the README's
number) and fsdd-digits (0.438 s), counted here from the raw files, not through TaskBatches.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from conftest import needs_minilm
from test_task_quality import AUDIO_TASK
from test_tasks import SHARED_DATA, needs_shared_data

from compbench.architectures.families import SAMPLE_RATE
from compbench.architectures.presets import _minilm_package_weights
from compbench.quality.classify import TEXT_MAX_TOKENS, load_tokenizer
from compbench.quality.context import TaskBatches
from compbench.tasks import find_task


def test_speech_mean_seconds_is_the_mean_clip_length_of_the_split(tmp_path):
    """Clips of 0.1 s to 0.8 s (16 kHz) and 8 kHz ones (read at 16 kHz): the train split's mean."""
    (tmp_path / "tones").mkdir()
    rate_of = {}
    for pitch in ("low", "high"):
        for i in range(12):
            rate = 8000 if i % 3 == 0 else SAMPLE_RATE
            frames = int(rate * 0.1 * (1 + i % 8))
            soundfile.write(str(tmp_path / "tones" / f"{pitch}_{i}.wav"), np.zeros(frames, np.float32), rate)
            rate_of[(pitch, i)] = frames / rate
    (tmp_path / "tones.yaml").write_text(yaml.safe_dump(AUDIO_TASK))
    data = TaskBatches(find_task(str(tmp_path / "tones.yaml")), str(tmp_path))
    train = [seconds for (pitch, i), seconds in rate_of.items() if i <= 7]  # train takes 0-7
    assert data.examples("train") == len(train) == 16
    assert data.mean_input_size("train") == pytest.approx(sum(train) / len(train), abs=1 / SAMPLE_RATE)


@needs_shared_data
def test_fsdd_digits_mean_seconds_counted_from_the_wav_files():
    data = TaskBatches(find_task("fsdd-digits"), SHARED_DATA)
    pattern = re.compile(r"(\d)_([a-z]+)_(\d+)\.wav")
    seconds = []
    for path in sorted(Path(SHARED_DATA, "fsdd", "recordings").glob("*.wav")):
        match = pattern.fullmatch(path.name)
        if match and 10 <= int(match.group(3)) <= 49:  # the train split's takes
            info = soundfile.info(str(path))
            seconds.append(info.frames / info.samplerate)
    assert len(seconds) == data.examples("train") == 2400
    assert data.mean_input_size("train") == pytest.approx(sum(seconds) / len(seconds), abs=1e-3)
    assert round(data.mean_input_size("train"), 3) == 0.438


@needs_shared_data
@needs_minilm
def test_rt_polarity_mean_tokens_counted_sentence_by_sentence():
    checkpoint = str(_minilm_package_weights())
    data = TaskBatches(find_task("rt-polarity"), SHARED_DATA, checkpoint)
    tokenizer = load_tokenizer(checkpoint)
    train = data.split("train")
    # each sentence's own ids, untruncated, then capped (compbench truncates while it tokenizes)
    counts = [min(len(ids), TEXT_MAX_TOKENS) for ids in tokenizer(list(train.inputs))["input_ids"]]
    assert len(counts) == 10283 and max(counts) <= TEXT_MAX_TOKENS
    assert data.mean_input_size("train") == pytest.approx(sum(counts) / len(counts), rel=1e-12)
    assert round(data.mean_input_size("train")) == 27
