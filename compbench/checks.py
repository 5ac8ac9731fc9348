"""Strict checks for declarative YAML files (tasks, sweeps): unknown keys, missing keys, types, choices.

Every error names where it happened (the file and the key path), so a user can fix it at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compbench.errors import InvalidInputError

# key -> (type or tuple of types, required)
KeySpec = dict[str, tuple[Any, bool]]


def type_names(types: Any) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "dict": "mapping",
             "list": "list", "NoneType": "null"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in types)


def is_instance(value: Any, types: Any) -> bool:
    """isinstance, except that a bool is not an int and an int is a float (as YAML users expect)."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def a_or_an(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def check_type(where: str, value: Any, types: Any) -> None:
    if not is_instance(value, types):
        raise InvalidInputError(f"{where} must be {a_or_an(type_names(types))}, got {value!r}")


def check_keys(where: str, data: dict, keys: KeySpec) -> None:
    """Refuse unknown keys, missing required keys and values of the wrong type."""
    unknown = sorted(set(data) - set(keys), key=str)
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                f"allowed: {', '.join(keys)}")
    for key, (types, required) in keys.items():
        if key not in data:
            if required:
                raise InvalidInputError(f"{where}: missing key {key!r}")
            continue
        if not is_instance(data[key], types):
            raise InvalidInputError(f"{where}: {key!r} must be {a_or_an(type_names(types))}, got {data[key]!r}")


def check_document(where: str, data: Any, kind: str, keys: KeySpec, version_key: str, version: int) -> dict:
    """A parsed file must be a mapping with the allowed keys and the version this compbench reads."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: {a_or_an(kind)} holds a mapping, got {type(data).__name__}")
    check_keys(where, data, keys)
    if data[version_key] != version:
        raise InvalidInputError(f"{where}: {version_key} {data[version_key]} is not supported "
                                f"(this compbench reads {kind}s of {version_key} {version})")
    return data


def check_choice(where: str, key: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"{where}: {key!r} must be one of {', '.join(map(str, choices))}, got {value!r}")


def load_yaml_file(path: str | Path, kind: str) -> Any:
    """The parsed content of a YAML file (``yaml.safe_load``); an unreadable or invalid file is one clear error."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InvalidInputError(f"cannot read {kind} {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise InvalidInputError(f"{path}: not valid YAML: {err}") from None
