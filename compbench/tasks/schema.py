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
METRICS = ("accuracy", "macro_f1")  # classification's (compbench.metrics says which way each is better)
PROTOCOLS = ("finetune", "superb_probe")
SOURCE_KINDS = ("csv", "audio_folder", "hf_dataset")
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
class HfDatasetSource:
    """A Hugging Face dataset by name (needs the hub; not used offline)."""

    name: str
    config: str | None = None
    splits: dict[str, str] = field(default_factory=dict)  # our split -> the dataset's split
    input_column: str = "text"
    label_column: str = "label"
    kind: str = "hf_dataset"


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    description: str
    input: str  # "text" or "audio"
    source: CsvSource | AudioFolderSource | HfDatasetSource
    labels: list[str]
    metric: str
    protocol: str
    evaluate_on: str = "test"
    file: str | None = None


# key -> (type(s), required)
_TASK_KEYS: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True), "name": (str, True), "version": (int, True), "description": (str, True),
    "input": (str, True), "source": (dict, True), "labels": (list, True), "metric": (str, True),
    "protocol": (str, True), "evaluate_on": (str, False),
}
_SOURCE_KEYS: dict[str, dict[str, tuple[Any, bool]]] = {
    "csv": {"kind": (str, True), "path": (str, True), "files": (dict, True), "text_column": (str, False),
            "label_column": (str, False)},
    "audio_folder": {"kind": (str, True), "path": (str, True), "filename_pattern": (str, False),
                     "label": (str, False), "split_field": (str, False), "split_ranges": (dict, False)},
    "hf_dataset": {"kind": (str, True), "name": (str, True), "config": (str, False), "splits": (dict, False),
                   "input_column": (str, False), "label_column": (str, False)},
}
_SOURCE_TYPES = {"csv": CsvSource, "audio_folder": AudioFolderSource, "hf_dataset": HfDatasetSource}


def task_from_dict(data: object, where: str) -> Task:
    """A validated Task from parsed YAML; ``where`` names the file in error messages."""
    data = check_document(where, data, "task file", _TASK_KEYS, "schema_version", TASK_SCHEMA_VERSION)
    check_choice(where, "input", data["input"], INPUTS)
    check_choice(where, "metric", data["metric"], METRICS)
    check_choice(where, "protocol", data["protocol"], PROTOCOLS)
    evaluate_on = data.get("evaluate_on", "test")
    check_choice(where, "evaluate_on", evaluate_on, SPLITS)
    labels = data["labels"]
    if len(labels) < 2 or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise InvalidInputError(f"{where}: 'labels' must list at least two distinct strings")
    source = data["source"]
    kind = source.get("kind")
    if kind not in SOURCE_KINDS:
        raise InvalidInputError(f"{where}: source 'kind' must be one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    check_keys(f"{where}: source", source, _SOURCE_KEYS[kind])
    for key in ("files", "splits", "split_ranges"):
        for split in source.get(key, {}):
            check_choice(f"{where}: source.{key}", "split", split, SPLITS)
    return Task(name=data["name"], version=data["version"], description=data["description"],
                input=data["input"], source=_SOURCE_TYPES[kind](**source), labels=list(labels),
                metric=data["metric"], protocol=data["protocol"], evaluate_on=evaluate_on, file=where)


def load_task_file(path: str | Path) -> Task:
    return task_from_dict(load_yaml_file(path, "task file"), str(path))
