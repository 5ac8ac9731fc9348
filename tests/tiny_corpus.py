"""A tiny speech-recognition corpus in the LibriSpeech folder layout, written with soundfile: each utterance
says one to three "words", each word a quarter-second tone of its own pitch, with silence between them."""

from pathlib import Path

import numpy as np
import soundfile
import yaml

WORDS = {"lo": 300, "mid": 900, "hi": 2000}
SPLITS = {"train": 16, "dev": 4, "test": 4}  # utterances per split
LIBRISPEECH_TASK = {
    "schema_version": 1, "name": "tiny-asr", "version": 1, "description": "tones as words", "input": "audio",
    "output": "transcript", "source": {"kind": "librispeech", "path": "TinySpeech",
                                       "splits": {"train": "train", "dev": "dev", "test": "test"}},
    "metric": "wer", "protocol": "finetune"}


def word_audio(word: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(4000) / 16000
    return (0.5 * np.sin(2 * np.pi * WORDS[word] * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def write_corpus(root: Path, folder: str = "TinySpeech", extension: str = "flac") -> dict[str, dict[str, str]]:
    """The corpus under ``root / folder``: per split, speakers 1 and 2 with chapter 10; returns split ->
    utterance id -> transcript."""
    rng = np.random.default_rng(0)
    names = sorted(WORDS)
    written: dict[str, dict[str, str]] = {}
    for split, count in SPLITS.items():
        written[split] = {}
        for number in range(count):
            speaker = 1 + number % 2
            chapter = root / folder / split / str(speaker) / "10"
            chapter.mkdir(parents=True, exist_ok=True)
            words = [names[i] for i in rng.integers(len(names), size=int(rng.integers(1, 4)))]
            silence = np.zeros(1600, dtype=np.float32)
            pieces = [silence]
            for word in words:
                pieces += [word_audio(word, rng), silence]
            utterance = f"{speaker}-10-{number:04d}"
            soundfile.write(str(chapter / f"{utterance}.{extension}"), np.concatenate(pieces), 16000)
            with open(chapter / f"{speaker}-10.trans.txt", "a", encoding="utf-8") as listing:
                listing.write(f"{utterance} {' '.join(words).upper()}\n")
            written[split][utterance] = " ".join(words).upper()
    return written


def write_task(root: Path, **changes) -> Path:
    path = root / "tiny-asr.yaml"
    path.write_text(yaml.safe_dump({**LIBRISPEECH_TASK, **changes}))
    return path
