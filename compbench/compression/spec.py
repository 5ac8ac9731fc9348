"""Compression pipelines from the command line: ``head_pruning=0.5,low_rank=0.3`` or a file.

The string names steps and amounts only; options live in a YAML or JSON file, either a list
of ``{name, amount, options}`` steps, or passed with ``--compress-options`` as a mapping from
compressor name to its options.
"""

from __future__ import annotations

import json
from pathlib import Path

from compbench.checks import check_type, load_yaml_file, read_text_file, syntax_error
from compbench.compression.compressor import COMPRESSORS
from compbench.compression.pipeline import Step, check_pipeline
from compbench.errors import CompbenchError, InvalidInputError
from compbench.record import step_label

PIPELINE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def _load_file(path: Path, kind: str):
    if path.suffix != ".json":
        return load_yaml_file(path, kind)
    text = read_text_file(path, kind)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise syntax_error(path, "JSON", err) from None
    if data is None:
        raise InvalidInputError(f"{path}: the {kind} is empty")
    return data


def parse_step(text: str, options: dict | None = None, where: str = "--compress") -> Step:
    """One unchecked step from ``name`` or ``name=amount`` (options come from elsewhere, never the string)."""
    name, sep, amount_text = text.strip().partition("=")
    amount = None
    if sep:
        try:
            amount = float(amount_text)
        except ValueError:
            raise InvalidInputError(
                f"{where}: amount {amount_text.strip()!r} of {name.strip()} is not a number") from None
    return Step(name.strip(), amount, dict(options or {}))


def parse_spec(spec: str, options_by_name: dict[str, dict] | None = None) -> list[Step]:
    """Steps from ``name[=amount],name[=amount]...`` or from a pipeline file."""
    options_by_name = options_by_name or {}
    if spec.endswith(PIPELINE_FILE_SUFFIXES):
        return _steps_from_file(Path(spec))
    steps = []
    for part in spec.split(","):
        if not part.strip():
            raise InvalidInputError(f"empty step in --compress {spec!r}")
        name = part.partition("=")[0].strip()
        steps.append(parse_step(part, options_by_name.get(name), where=f"--compress {spec!r}"))
    return check_pipeline(steps)


def _steps_from_file(path: Path) -> list[Step]:
    data = _load_file(path, "pipeline file")
    if not isinstance(data, list):
        raise InvalidInputError(f"{path}: a pipeline file holds a list of steps ({{name, amount, options}})")
    steps = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "amount", "options"}:
            raise InvalidInputError(f"{path}: step {index + 1} must be a mapping with 'name' and optional "
                                    "'amount' and 'options'")
        if not isinstance(entry.get("options", {}), dict):
            raise InvalidInputError(f"{path}: step {index + 1}: 'options' must be a mapping")
        check_type(f"{path}: step {index + 1}: 'name'", entry["name"], str)
        check_type(f"{path}: step {index + 1}: 'amount'", entry.get("amount"), (float, type(None)))
        steps.append(Step(entry["name"], entry.get("amount"), entry.get("options") or {}))
    try:
        return check_pipeline(steps)
    except CompbenchError as err:
        raise InvalidInputError(f"{path}: {err}") from None


def load_options_file(path: str) -> dict[str, dict]:
    """``--compress-options FILE``: a mapping from compressor name to its options."""
    data = _load_file(Path(path), "compressor options file")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InvalidInputError(f"{path}: expected a mapping from compressor name to a mapping of options")
    for name, options in data.items():
        try:  # a misspelled name would leave its options unapplied
            COMPRESSORS.get(name).check_options(options)
        except CompbenchError as err:
            raise InvalidInputError(f"{path}: {err}") from None
    return data


def spec_label(steps: list[Step]) -> str:
    """The steps as written on the command line: ``head_pruning=0.5,int8_dynamic``."""
    return ",".join(step_label(step.to_dict()) for step in steps)
