"""The task file schema (version 1), written down as types and checked strictly.

A task file is YAML read with ``yaml.safe_load``. Unknown keys, missing keys and wrong types
are errors that name the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compbench.checks import check_choice, check_document, check_keys, load_yaml_file
from compbench.errors import InvalidInputError

TASK_SCHEMA_VERSION = 1
INPUTS = ("text", "audio")
OUTPUTS = ("label", "transcript")  # a class per example, or its words (speech recognition)
# the metrics of each output (compbench.metrics says which way each is better)
METRICS_OF_OUTPUT = {"label": ("accuracy", "macro_f1"), "transcript": ("wer", "cer")}
METRICS = tuple(metric for metrics in METRICS_OF_OUTPUT.values() for metric in metrics)
PROTOCOLS = ("finetune", "superb_probe")
SOURCE_KINDS = ("csv", "audio_folder", "hf_dataset", "concatenated_clips", "librispeech")
SPLITS = ("train", "dev", "test")
MODALITY_OF_INPUT = {"text": "text", "audio": "speech"}  # a task's input -> the models that take it


@dataclass(frozen=True)
class CsvSource:
    """A folder of CSV files, one per split, with a text and a label column."""

    path: str  # relative to the data root
    files: dict[str, str]  # split -> file name
    text_column: str = "text"
    label_column: str = "label"
    kind: str = "csv"


@dataclass(frozen=True)
class AudioFolderSource:
    """A folder of audio files; labels and split come from file-name fields or sub-folders."""

    path: str
    filename_pattern: str | None = None  # a regex with named groups, e.g. (?P<digit>\d)_...
    label: str = "folder"  # a named group of filename_pattern, or "folder" (the sub-folder name)
    split_field: str | None = None  # a named group holding an integer...
    split_ranges: dict[str, list[int]] = field(default_factory=dict)  # ...and its inclusive range per split
    kind: str = "audio_folder"


@dataclass(frozen=True)
class ConcatenatedClipsSource:
    """Utterances built from labelled clips (an :class:`AudioFolderSource`), deterministically: each joins
    ``clips_per_utterance`` clips of one split, all sharing the value of the file-name group ``same`` (one
    speaker), with ``silence_ms`` of silence between them; its transcript is the clips' ``words``. A split's
    utterances are made of that split's clips only, so no recording crosses splits."""

    clips: AudioFolderSource
    words: dict[str, str]  # a clip's label -> the word it is spoken as
    utterances: dict[str, int]  # split -> how many are built
    clips_per_utterance: list[int] = field(default_factory=lambda: [2, 7])  # inclusive range
    silence_ms: list[int] = field(default_factory=lambda: [50, 250])  # inclusive range, between clips
    same: str | None = None  # a filename_pattern group every clip of an utterance shares
    seed: int = 0
    kind: str = "concatenated_clips"


@dataclass(frozen=True)
class LibriSpeechSource:
    """A corpus in the LibriSpeech folder layout: per split a folder of ``speaker/chapter/`` folders, each with
    its ``speaker-chapter-utterance.flac`` files and ``speaker-chapter.trans.txt``, one ``ID TRANSCRIPT`` line
    per utterance. Transcripts are read as written (LibriSpeech's are upper case)."""

    path: str  # relative to the data root
    splits: dict[str, str]  # split -> its folder under path, e.g. {train: train-clean-100, test: test-clean}
    kind: str = "librispeech"


@dataclass(frozen=True)
class HfDatasetSource:
    """A Hugging Face dataset by name (needs the hub; not used offline). A transcription task names the
    ``transcript_column`` and reads audio (a column of ``{array, sampling_rate}``) from ``input_column``."""

    name: str
    config: str | None = None
    splits: dict[str, str] = field(default_factory=dict)  # our split -> the dataset's split
    input_column: str = "text"
    label_column: str = "label"
    transcript_column: str | None = None
    kind: str = "hf_dataset"


@dataclass(frozen=True)
class ProbeSettings:
    """The SUPERB recognition probe of a transcription task (``protocol: superb_probe``; the task file's
    ``probe`` mapping): a bidirectional LSTM of ``layers`` x ``hidden`` units per direction over the weighted
    sum of the upstream's states, trained with CTC for ``epochs`` (SUPERB's ASR task: 2 x 1024, smaller here
    for CPUs)."""

    hidden: int = 256
    layers: int = 2
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 1e-3
    seed: int = 0


_PROBE_KEYS: dict[str, tuple[Any, bool]] = {"hidden": (int, False), "layers": (int, False), "epochs": (int, False),
                                            "batch_size": (int, False), "learning_rate": ((float, int), False),
                                            "seed": (int, False)}


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    description: str
    input: str  # "text" or "audio"
    source: CsvSource | AudioFolderSource | HfDatasetSource | ConcatenatedClipsSource | LibriSpeechSource
    labels: list[str]  # output label: the classes; output transcript: none (the vocabulary is the transcripts')
    metric: str
    protocol: str
    evaluate_on: str = "test"
    file: str | None = None
    output: str = "label"
    probe: ProbeSettings | None = None  # a transcription task evaluated by superb_probe: the recognition probe


# key -> (type(s), required)
_TASK_KEYS: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True), "name": (str, True), "version": (int, True), "description": (str, True),
    "input": (str, True), "source": (dict, True), "labels": (list, False), "metric": (str, True),
    "protocol": (str, True), "evaluate_on": (str, False), "output": (str, False), "probe": (dict, False),
}
_SOURCE_KEYS: dict[str, dict[str, tuple[Any, bool]]] = {
    "csv": {"kind": (str, True), "path": (str, True), "files": (dict, True), "text_column": (str, False),
            "label_column": (str, False)},
    "audio_folder": {"kind": (str, True), "path": (str, True), "filename_pattern": (str, False),
                     "label": (str, False), "split_field": (str, False), "split_ranges": (dict, False)},
    "hf_dataset": {"kind": (str, True), "name": (str, True), "config": (str, False), "splits": (dict, False),
                   "input_column": (str, False), "label_column": (str, False), "transcript_column": (str, False)},
    "concatenated_clips": {"kind": (str, True), "clips": (dict, True), "words": (dict, True),
                           "utterances": (dict, True), "clips_per_utterance": (list, False),
                           "silence_ms": (list, False), "same": (str, False), "seed": (int, False)},
    "librispeech": {"kind": (str, True), "path": (str, True), "splits": (dict, True)},
}
_SOURCE_TYPES = {"csv": CsvSource, "audio_folder": AudioFolderSource, "hf_dataset": HfDatasetSource,
                 "concatenated_clips": ConcatenatedClipsSource, "librispeech": LibriSpeechSource}
# what each source kind gives an example (a Hugging Face dataset: a transcript where it names a transcript column)
_OUTPUT_OF_SOURCE = {"csv": "label", "audio_folder": "label", "concatenated_clips": "transcript",
                     "librispeech": "transcript"}


def task_from_dict(data: object, where: str) -> Task:
    """A validated Task from parsed YAML; ``where`` names the file in error messages."""
    data = check_document(where, data, "task file", _TASK_KEYS, "schema_version", TASK_SCHEMA_VERSION)
    check_choice(where, "input", data["input"], INPUTS)
    output = data.get("output", "label")
    check_choice(where, "output", output, OUTPUTS)
    check_choice(where, "metric", data["metric"], METRICS_OF_OUTPUT[output])
    check_choice(where, "protocol", data["protocol"], PROTOCOLS)
    evaluate_on = data.get("evaluate_on", "test")
    check_choice(where, "evaluate_on", evaluate_on, SPLITS)
    labels = data.get("labels")
    if output == "label" and (not isinstance(labels, list) or len(labels) < 2 or
                              not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels)):
        raise InvalidInputError(f"{where}: 'labels' must list at least two distinct strings")
    if output == "transcript" and data["input"] != "audio":
        raise InvalidInputError(f"{where}: a transcription task transcribes audio: 'input' must be audio")
    if output == "transcript" and labels is not None:
        raise InvalidInputError(f"{where}: a transcription task has no 'labels' (its vocabulary is its transcripts' "
                                "characters)")
    source = data["source"]
    kind = source.get("kind")
    if kind not in SOURCE_KINDS:
        raise InvalidInputError(f"{where}: source 'kind' must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    check_keys(f"{where}: source", source, _SOURCE_KEYS[kind])
    gives = _OUTPUT_OF_SOURCE.get(kind) or ("transcript" if source.get("transcript_column") else "label")
    if gives != output:
        named = " without a transcript_column" if kind == "hf_dataset" and gives == "label" else ""
        raise InvalidInputError(f"{where}: a {kind} source{named} gives each example a {gives}, and this task's "
                                f"output is {output!r}")
    for key in ("files", "splits", "split_ranges", "utterances"):
        for split in source.get(key, {}):
            check_choice(f"{where}: source.{key}", "split", split, SPLITS)
    built = _concatenated_clips(where, source) if kind == "concatenated_clips" else _SOURCE_TYPES[kind](**source)
    probe = _probe(where, data, output)
    return Task(name=data["name"], version=data["version"], description=data["description"],
                input=data["input"], source=built, labels=list(labels or []), metric=data["metric"],
                protocol=data["protocol"], evaluate_on=evaluate_on, file=where, output=output, probe=probe)


def _probe(where: str, data: dict, output: str) -> ProbeSettings | None:
    """The recognition probe's settings of a transcription task evaluated by ``superb_probe`` (defaults where the
    file gives none); the one error for a ``probe`` mapping any other task gives."""
    if output != "transcript" or data["protocol"] != "superb_probe":
        if "probe" in data:
            raise InvalidInputError(f"{where}: 'probe' sets the recognition probe of a transcription task with "
                                    "protocol superb_probe")
        return None
    given = data.get("probe") or {}
    check_keys(f"{where}: probe", given, _PROBE_KEYS)
    for key, value in given.items():
        if not value > 0:
            raise InvalidInputError(f"{where}: probe.{key} must be > 0, got {value!r}")
    return ProbeSettings(**{**given, **({"learning_rate": float(given["learning_rate"])}
                                        if "learning_rate" in given else {})})


def _concatenated_clips(where: str, source: dict) -> ConcatenatedClipsSource:
    """A checked :class:`ConcatenatedClipsSource`: its clips an audio folder with splits, its ranges ordered."""
    clips = dict(source["clips"])
    clips.setdefault("kind", "audio_folder")
    if clips["kind"] != "audio_folder":
        raise InvalidInputError(f"{where}: source.clips must be an audio_folder source, got {clips['kind']!r}")
    check_keys(f"{where}: source.clips", clips, _SOURCE_KEYS["audio_folder"])
    for split in clips.get("split_ranges", {}):
        check_choice(f"{where}: source.clips.split_ranges", "split", split, SPLITS)
    for key, lowest in (("clips_per_utterance", 1), ("silence_ms", 0)):
        bounds = source.get(key)
        if bounds is not None and not (len(bounds) == 2 and all(isinstance(b, int) for b in bounds)
                                       and lowest <= bounds[0] <= bounds[1]):
            raise InvalidInputError(f"{where}: source.{key} must be [low, high], whole numbers, "
                                    f"{lowest} <= low <= high; got {bounds!r}")
    for split, count in source["utterances"].items():
        if not isinstance(count, int) or count < 1:
            raise InvalidInputError(f"{where}: source.utterances.{split} must be a whole number >= 1, got {count!r}")
    words = source["words"]
    if not words or not all(isinstance(k, str) and isinstance(v, str) and v.strip() and " " not in v.strip()
                            for k, v in words.items()):
        raise InvalidInputError(f"{where}: source.words must map each clip label (a string) to one word")
    clips_source = AudioFolderSource(**clips)
    if source.get("same") and (not clips_source.filename_pattern
                               or f"(?P<{source['same']}>" not in clips_source.filename_pattern):
        raise InvalidInputError(f"{where}: source.same {source['same']!r} is not a group of source.clips' "
                                "filename_pattern")
    return ConcatenatedClipsSource(**{**source, "clips": clips_source})


def load_task_file(path: str | Path) -> Task:
    return task_from_dict(load_yaml_file(path, "task file"), str(path))
