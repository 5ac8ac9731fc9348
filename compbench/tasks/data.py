"""Task data: where it lives (a setting) and loading one split as inputs and label indices."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compbench.architectures.families import SAMPLE_RATE
from compbench.errors import InvalidInputError
from compbench.tasks.schema import (
    SPLITS,
    AudioFolderSource,
    ConcatenatedClipsSource,
    CsvSource,
    HfDatasetSource,
    LibriSpeechSource,
    Task,
)

DATA_ROOT_ENV = "COMPBENCH_DATA_ROOT"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


class MissingDataError(InvalidInputError):
    """Task data that is not where the settings say."""


@dataclass
class Examples:
    """One split of a task: inputs (text, or 16 kHz float32 waveforms), label indices (a transcription task:
    none, and ``transcripts``, each example's words), ids."""

    inputs: list
    labels: np.ndarray
    ids: list[str]
    transcripts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index: list[int]) -> Examples:
        """The examples at ``index``, in that order, every field kept aligned."""
        return Examples([self.inputs[i] for i in index], self.labels[index] if len(self.labels) else self.labels,
                        [self.ids[i] for i in index],
                        None if self.transcripts is None else [self.transcripts[i] for i in index])


def resolve_data_root(flag: str | None = None) -> Path:
    """The data root from ``--data-root``, else ``$COMPBENCH_DATA_ROOT``; an error says where it looked."""
    if flag:
        where, root = "--data-root", Path(flag)
    elif os.environ.get(DATA_ROOT_ENV):
        where, root = f"${DATA_ROOT_ENV}", Path(os.environ[DATA_ROOT_ENV])
    else:
        raise MissingDataError(f"no data root set: pass --data-root DIR or set ${DATA_ROOT_ENV} "
                               "(in this repository's CI it is ../shared/data)")
    if not root.is_dir():
        raise MissingDataError(f"data root {root} (from {where}) is not a directory")
    return root


def _label_index(task: Task, value: str, where: str) -> int:
    try:
        return task.labels.index(value)
    except ValueError:
        raise InvalidInputError(f"{where}: label {value!r} is not one of the task's labels "
                                f"({', '.join(task.labels)})") from None


def _load_csv(task: Task, source: CsvSource, split: str, root: Path) -> Examples:
    import pandas as pd

    if split not in source.files:
        raise InvalidInputError(f"task {task.name} has no {split!r} split")
    path = root / source.path / source.files[split]
    if not path.is_file():
        raise MissingDataError(f"task {task.name}: {path} does not exist (data root {root})")
    frame = pd.read_csv(path)
    for column in (source.text_column, source.label_column):
        if column not in frame.columns:
            raise InvalidInputError(f"{path}: no column {column!r} (columns: {', '.join(frame.columns)})")
    labels = [_label_index(task, str(v), f"{path} row {i + 2}") for i, v in enumerate(frame[source.label_column])]
    return Examples(inputs=[str(t) for t in frame[source.text_column]], labels=np.array(labels),
                    ids=[f"{path.name}:{i + 2}" for i in range(len(frame))])


def read_audio(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz (soundfile reads, soxr resamples)."""
    import soundfile
    import soxr

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)
    return audio


def _audio_files(task: Task, source: AudioFolderSource, root: Path) -> list[tuple[Path, str, str]]:
    """(file, label, split) for every audio file of the source."""
    return [(path, label, split) for path, label, split, _ in _audio_files_and_fields(task, source, root)]


def _audio_files_and_fields(task: Task, source: AudioFolderSource, root: Path) -> list[tuple[Path, str, str, dict]]:
    """(file, label, split, the groups of its file name) for every audio file of the source that has a split."""
    folder = root / source.path
    if not folder.is_dir():
        raise MissingDataError(f"task {task.name}: {folder} does not exist (data root {root})")
    pattern = re.compile(source.filename_pattern) if source.filename_pattern else None
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        relative = path.relative_to(folder)
        fields = {}
        if pattern is not None:
            match = pattern.fullmatch(path.name)
            if match is None:
                raise InvalidInputError(f"{path}: file name does not match {source.filename_pattern!r}")
            fields = match.groupdict()
        if source.label == "folder":
            label = relative.parts[-2] if len(relative.parts) >= 2 else ""
        elif source.label in fields:
            label = fields[source.label]
        else:
            raise InvalidInputError(f"task {task.name}: label {source.label!r} is not a group of filename_pattern")
        if source.split_field:
            if source.split_field not in fields:
                raise InvalidInputError(f"task {task.name}: split_field {source.split_field!r} is not a group "
                                        "of filename_pattern")
            value = int(fields[source.split_field])
            split = next((s for s, (lo, hi) in source.split_ranges.items() if lo <= value <= hi), None)
        else:  # <path>/<split>/<label>/<file>
            split = relative.parts[0] if len(relative.parts) >= 3 else None
        if split is not None:
            found.append((path, label, split, fields))
    return found


def _load_audio_folder(task: Task, source: AudioFolderSource, split: str, root: Path) -> Examples:
    files = [(path, label) for path, label, s in _audio_files(task, source, root) if s == split]
    if not files:
        raise MissingDataError(f"task {task.name}: no {split!r} audio files under {root / source.path}")
    labels = [_label_index(task, label, str(path)) for path, label in files]
    return Examples(inputs=[read_audio(path) for path, _ in files], labels=np.array(labels),
                    ids=[path.name for path, _ in files])


def _load_hf(task: Task, source: HfDatasetSource, split: str, root: Path) -> Examples:
    try:
        import datasets
    except ImportError:
        raise MissingDataError(f"task {task.name} reads a Hugging Face dataset: pip install datasets "
                               "(and it needs network access to the hub)") from None
    data = datasets.load_dataset(source.name, source.config, split=source.splits.get(split, split))
    for column in (source.input_column, source.transcript_column or source.label_column):
        if column not in data.column_names:
            raise InvalidInputError(f"{source.name}[{split}]: no column {column!r} "
                                    f"(columns: {', '.join(data.column_names)})")
    inputs = list(data[source.input_column])
    ids = [str(i) for i in range(len(inputs))]
    if task.input == "audio":
        inputs = [_hf_audio(item, f"{source.name}[{split}] row {i}") for i, item in enumerate(inputs)]
    if source.transcript_column:
        return Examples(inputs=inputs, labels=np.zeros(0, dtype=np.int64), ids=ids,
                        transcripts=[str(t) for t in data[source.transcript_column]])
    labels = [_label_index(task, str(v), f"{source.name}[{split}]") for v in data[source.label_column]]
    return Examples(inputs=inputs, labels=np.array(labels), ids=ids)


def _hf_audio(item, where: str) -> np.ndarray:
    """A Hugging Face audio value (``{"array", "sampling_rate"}``) as mono float32 at 16 kHz."""
    import soxr

    try:
        audio, rate = np.asarray(item["array"], dtype=np.float32), int(item["sampling_rate"])
    except (TypeError, KeyError):
        raise InvalidInputError(f"{where}: not an audio value (a mapping with 'array' and 'sampling_rate')") from None
    if audio.ndim == 2:
        audio = audio.mean(axis=0 if audio.shape[0] < audio.shape[1] else 1)
    return audio if rate == SAMPLE_RATE else soxr.resample(audio, rate, SAMPLE_RATE).astype(np.float32)


def _load_librispeech(task: Task, source: LibriSpeechSource, split: str, root: Path) -> Examples:
    """Every utterance of the split's folder, in the order of their ids, with its transcript: each
    ``speaker-chapter.trans.txt`` line ``ID TRANSCRIPT`` names the audio file ``ID.flac`` beside it."""
    if split not in source.splits:
        raise InvalidInputError(f"task {task.name} has no {split!r} split")
    folder = root / source.path / source.splits[split]
    if not folder.is_dir():
        raise MissingDataError(f"task {task.name}: {folder} does not exist (data root {root})")
    utterances: dict[str, tuple[Path, str]] = {}
    for listing in sorted(folder.glob("*/*/*.trans.txt")):
        prefix = listing.name.removesuffix(".trans.txt") + "-"
        for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utterance, _, transcript = line.strip().partition(" ")
            if not transcript.strip() or not utterance.startswith(prefix):
                raise InvalidInputError(f"{listing} line {number}: expected 'ID TRANSCRIPT' with an ID starting "
                                        f"{prefix!r}, got {line.strip()[:60]!r}")
            audio = next((listing.parent / f"{utterance}{suffix}" for suffix in AUDIO_SUFFIXES
                          if (listing.parent / f"{utterance}{suffix}").is_file()), None)
            if audio is None:
                raise MissingDataError(f"{listing} line {number}: no audio file {utterance}.flac beside it")
            utterances[utterance] = (audio, " ".join(transcript.split()))
    listed = {path for path, _ in utterances.values()}
    unlisted = sorted(p for p in folder.glob("*/*/*") if p.suffix.lower() in AUDIO_SUFFIXES and p not in listed)
    if unlisted:
        chapter = unlisted[0].parent
        listing = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
        raise InvalidInputError(f"{unlisted[0]}: no line for it in {listing} ({len(unlisted)} audio files of "
                                f"{folder} have none)")
    if not utterances:
        raise MissingDataError(f"task {task.name}: no speaker/chapter/*.trans.txt under {folder}")
    ids = sorted(utterances)
    return Examples(inputs=[read_audio(utterances[i][0]) for i in ids], labels=np.zeros(0, dtype=np.int64), ids=ids,
                    transcripts=[utterances[i][1] for i in ids])


def _load_concatenated_clips(task: Task, source: ConcatenatedClipsSource, split: str, root: Path) -> Examples:
    """``source.utterances[split]`` utterances built from the split's clips (:class:`ConcatenatedClipsSource`),
    the same every time: a generator seeded by the source's seed and the split draws each utterance's clip
    group, clip count, clips (with replacement) and silences."""
    if split not in source.utterances:
        raise InvalidInputError(f"task {task.name} has no {split!r} split")
    groups: dict[str, list[tuple[Path, str]]] = {}
    for path, label, clip_split, fields in _audio_files_and_fields(task, source.clips, root):
        if clip_split == split:
            if label not in source.words:
                raise InvalidInputError(f"{path}: label {label!r} has no word in {task.file or task.name}'s "
                                        "source.words")
            groups.setdefault(fields.get(source.same, "") if source.same else "", []).append((path, label))
    if not groups:
        raise MissingDataError(f"task {task.name}: no {split!r} clips under {root / source.clips.path}")
    keys = sorted(groups)
    rng = np.random.default_rng([source.seed, SPLITS.index(split)])
    audio_of: dict[Path, np.ndarray] = {}
    inputs, transcripts, ids = [], [], []
    for number in range(source.utterances[split]):
        group = groups[keys[rng.integers(len(keys))]]
        count = int(rng.integers(source.clips_per_utterance[0], source.clips_per_utterance[1] + 1))
        chosen = [group[i] for i in rng.integers(len(group), size=count)]
        silences = rng.integers(source.silence_ms[0], source.silence_ms[1] + 1, size=count - 1)
        pieces = []
        for index, (path, _) in enumerate(chosen):
            if path not in audio_of:
                audio_of[path] = read_audio(path)
            if index:
                pieces.append(np.zeros(round(silences[index - 1] * SAMPLE_RATE / 1000), dtype=np.float32))
            pieces.append(audio_of[path])
        inputs.append(np.concatenate(pieces))
        transcripts.append(" ".join(source.words[label] for _, label in chosen))
        ids.append(f"{split}-{number:05d}:" + "+".join(path.stem for path, _ in chosen))
    return Examples(inputs=inputs, labels=np.zeros(0, dtype=np.int64), ids=ids, transcripts=transcripts)


LOADERS = {"csv": _load_csv, "audio_folder": _load_audio_folder, "hf_dataset": _load_hf,
           "concatenated_clips": _load_concatenated_clips, "librispeech": _load_librispeech}


def load_split(task: Task, split: str, data_root: str | None = None) -> Examples:
    """One split of ``task``, with labels as indices into ``task.labels`` (a transcription task: transcripts)."""
    root = resolve_data_root(data_root)
    return LOADERS[task.source.kind](task, task.source, split, root)
