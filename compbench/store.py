"""The results store: records appended to a JSONL file, loaded as a pandas DataFrame.

Every line is one record carrying ``schema_version``. A file with another version is
refused (or migrated, where a migration is known); a corrupt file is refused with the line
number. Appends are atomic: the new file is written beside the old and renamed over it, so
an interrupted run leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from compbench.errors import CorruptResultsError, SchemaVersionError
from compbench.record import SCHEMA_VERSION, validate_record

# from_version -> function upgrading a record to from_version + 1
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


def _migrate(record: dict, path: Path, line: int) -> dict:
    version = record.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CorruptResultsError(f"{path}:{line}: record has no integer schema_version")
    while version != SCHEMA_VERSION:
        migration = MIGRATIONS.get(version)
        if migration is None:
            raise SchemaVersionError(
                f"{path}:{line}: results written with schema_version {version}; this compbench "
                f"reads schema_version {SCHEMA_VERSION} and knows no migration from {version}. "
                "Re-run the measurement or use the compbench version that wrote the file.")
        record = migration(record)
        version = record["schema_version"]
    return record


def read_records(path: str | Path) -> list[dict]:
    """All records in ``path``, validated and migrated to the current schema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorruptResultsError(f"results file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise CorruptResultsError(f"results file {path} is not UTF-8 text: {err}") from None
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorruptResultsError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorruptResultsError(f"{path}:{number}: expected a JSON object per line")
        record = _migrate(record, path, number)
        problems = validate_record(record)
        if problems:
            raise CorruptResultsError(f"{path}:{number}: invalid record: {'; '.join(problems)}")
        records.append(record)
    return records


def append_records(path: str | Path, records: list[dict]) -> None:
    """Append ``records`` to the JSONL file at ``path`` atomically.

    An existing file is validated first: nothing is written to a corrupt file or one of
    another schema version.
    """
    path = Path(path)
    for record in records:
        problems = validate_record(record)
        if problems:
            raise CorruptResultsError(f"refusing to write an invalid record: {'; '.join(problems)}")
        if record["schema_version"] != SCHEMA_VERSION:
            raise SchemaVersionError(f"refusing to write schema_version {record['schema_version']}")
    existing = ""
    if path.exists():
        read_records(path)
        existing = path.read_text(encoding="utf-8")
        if existing and not existing.endswith("\n"):
            existing += "\n"
    new_lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(existing + new_lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def records_to_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record; nested objects become dotted columns (``latency_ms.median``)."""
    return pd.json_normalize(records, max_level=1)


def load_records(path: str | Path) -> pd.DataFrame:
    """The records of a results file as a DataFrame (see :func:`records_to_frame`)."""
    return records_to_frame(read_records(path))
