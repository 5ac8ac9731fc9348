"""The results store: records appended to a JSONL file, loaded as a pandas DataFrame.

Every line is one record carrying ``schema_version``. A file with another version is
refused (or migrated, where a migration is known); a corrupt file is refused with the line
number. Appends are atomic: the new file is written beside the old and renamed over it, so
an interrupted run (even ``kill -9``) leaves the previous file intact, never a partial line.
A lock file beside the results (``.NAME.lock``, left in place: removing a lock file is racy)
serialises writers, so two processes appending to one file never lose each other's lines.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pandas as pd
from filelock import FileLock

from compbench.atomic import write_text_atomically
from compbench.errors import CorruptResultsError, ResultsWriteError, SchemaVersionError
from compbench.outputs import check_output_file
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


def _json_object(line: str, path: Path, number: int) -> dict:
    """Line ``number`` of ``path`` as the JSON object it must be."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        raise CorruptResultsError(f"{path}:{number}: not valid JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise CorruptResultsError(f"{path}:{number}: expected a JSON object per line")
    return value


def _json_lines(text: str, path: Path) -> list[tuple[int, str, dict]]:
    """(line number, line, object) for every non-blank line; a line that is no JSON object is refused."""
    return [(number, line, _json_object(line, path, number))
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _checked(record: dict, path: Path, number: int) -> dict:
    """Line ``number``'s record migrated to the current schema and validated."""
    record = _migrate(record, path, number)
    problems = validate_record(record)
    if problems:
        raise CorruptResultsError(f"{path}:{number}: invalid record: {'; '.join(problems)}")
    return record


def _parse_lines(text: str, path: Path) -> list[tuple[str, dict]]:
    """Each record line with its record, validated and migrated to the current schema."""
    return [(line, _checked(record, path, number)) for number, line, record in _json_lines(text, path)]


def _read_error(path: Path, err: OSError | UnicodeDecodeError) -> CorruptResultsError:
    """Why the results file ``path`` could not be read, in one line."""
    if isinstance(err, FileNotFoundError):
        return CorruptResultsError(f"results file {path} does not exist")
    if isinstance(err, IsADirectoryError):
        return CorruptResultsError(f"results file {path} is a directory")
    if isinstance(err, UnicodeDecodeError):
        return CorruptResultsError(f"results file {path} is not UTF-8 text: {err}")
    return CorruptResultsError(f"cannot read results file {path}: {err.strerror}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise _read_error(path, err) from None


def read_records(path: str | Path) -> list[dict]:
    """All records in ``path``, validated and migrated to the current schema."""
    return list(iter_records(path))


def iter_records(path: str | Path, without: Collection[str] = ()) -> Iterator[dict]:
    """Each record in ``path``, in file order, validated and migrated, read one line at a time (a file of any
    size in the memory of its records); the fields named in ``without`` (``latency_ms.samples``: a field of a
    field) are dropped as each is read. The same errors as :func:`read_records`, at the line they are met."""
    path = Path(path)
    dropped = [name.split(".") for name in without]
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = _checked(_json_object(line, path, number), path, number)
                for *parents, name in dropped:
                    holder = record
                    for parent in parents:
                        holder = holder.get(parent) if isinstance(holder, dict) else None
                    if isinstance(holder, dict):
                        holder.pop(name, None)
                yield record
    except (OSError, UnicodeDecodeError) as err:
        raise _read_error(path, err) from None


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold the writers' lock of ``path`` (a lock file beside it) for the block."""
    path = Path(path)
    lock_file = _lock_path(path)
    try:
        lock = FileLock(str(lock_file))
        with lock:
            yield
    except OSError as err:
        if isinstance(err, ResultsWriteError):
            raise
        raise ResultsWriteError(f"cannot write {path}: cannot create its lock file {lock_file} "
                                f"({err.strerror or err})") from None


def check_writable(path: str | Path) -> None:
    """Raise :class:`ResultsWriteError` unless ``path`` can be created or replaced in a folder that exists;
    writes nothing (:func:`compbench.outputs.check_output_file`)."""
    check_output_file(path, "results")


def existing_records(path: str | Path) -> list[dict]:
    """The records already in ``path`` (a corrupt or foreign file is refused), or none after checking
    that it can be created: what a command checks before it measures anything."""
    if Path(path).exists():
        return read_records(path)
    check_writable(path)
    return []


def append_records(path: str | Path, records: list[dict], replace_jobs: Collection[str] = ()) -> None:
    """Append ``records`` to the JSONL file at ``path`` atomically, under the writers' lock.

    An existing file is validated first: nothing is written to a corrupt file or one of
    another schema version. Records of the jobs in ``replace_jobs`` (their ``job`` key) are
    dropped from the file in the same write, so a re-run job appears once.
    """
    path = Path(path)
    for record in records:
        problems = validate_record(record)
        if problems:
            raise CorruptResultsError(f"refusing to write an invalid record: {'; '.join(problems)}")
        if record["schema_version"] != SCHEMA_VERSION:
            raise SchemaVersionError(f"refusing to write schema_version {record['schema_version']}")
    new_lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if not path.exists():
        check_writable(path)
    elif not _lock_path(path).exists():
        read_records(path)  # a file compbench never wrote: bad input must not even leave a lock file
    with locked(path):
        kept = ""
        if path.exists():  # read and checked once, under the lock
            lines = _parse_lines(_read_text(path), path)
            kept = "".join(line + "\n" for line, record in lines if record.get("job") not in replace_jobs)
        write_text_atomically(path, kept + new_lines)


def records_to_frame(records: list[dict]) -> pd.DataFrame:
    """One row per record; nested objects become dotted columns (``latency_ms.median``)."""
    return pd.json_normalize(records, max_level=1)


def frame_to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV, its list and mapping cells written as JSON (``[1.02, 1.1]``, ``{"attention": 3}``), not
    as Python would print them, so any CSV reader can parse them back."""
    def cell(value):
        return json.dumps(list(value) if isinstance(value, tuple) else value) if isinstance(
            value, list | tuple | dict) else value

    return frame.map(cell).to_csv(index=False)


def load_records(path: str | Path) -> pd.DataFrame:
    """The records of a results file as a DataFrame (see :func:`records_to_frame`)."""
    return records_to_frame(read_records(path))


# ---- failed jobs ---------------------------------------------------------------------------------
# A sweep job that fails is written to a failures file beside the results (RESULTS.failures.jsonl),
# one JSON object per failed job, replaced when the job fails again and removed when it succeeds.
FAILURE_KEYS = ("failures_version", "sweep", "job", "label", "config", "error_type", "error", "timestamp")
FAILURES_VERSION = 1


def failures_path(results: str | Path) -> Path:
    """``results.jsonl`` -> ``results.failures.jsonl`` (beside it)."""
    results = Path(results)
    stem = results.name[: -len(".jsonl")] if results.name.endswith(".jsonl") else results.name
    return results.with_name(f"{stem}.failures.jsonl")


def read_failures(results: str | Path) -> list[dict]:
    """The failed jobs recorded beside ``results`` (none when there is no failures file)."""
    path = failures_path(results)
    if not path.exists():
        return []
    entries = []
    for number, _, entry in _json_lines(_read_text(path), path):
        if any(key not in entry for key in FAILURE_KEYS):
            raise CorruptResultsError(f"{path}:{number}: not a failure record (keys: {', '.join(FAILURE_KEYS)})")
        if entry["failures_version"] != FAILURES_VERSION:
            raise SchemaVersionError(f"{path}:{number}: failures_version {entry['failures_version']}; this "
                                     f"compbench reads failures_version {FAILURES_VERSION}")
        entries.append(entry)
    return entries


def _rewrite_failures(results: Path, keep: Callable[[dict], bool], added: list[dict]) -> None:
    path = failures_path(results)
    with locked(path):
        entries = [e for e in read_failures(results) if keep(e)] + added
        if entries or path.exists():
            write_text_atomically(path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def record_failure(results: str | Path, entry: dict) -> None:
    """Write (or replace) the failure of ``entry['job']`` beside ``results``."""
    entry = {"failures_version": FAILURES_VERSION, **entry}
    missing = [key for key in FAILURE_KEYS if key not in entry]
    if missing:
        raise ValueError(f"a failure record needs {', '.join(missing)}")
    _rewrite_failures(Path(results), lambda e: e["job"] != entry["job"], [entry])


def clear_failures(results: str | Path, jobs: Collection[str]) -> None:
    """Remove the failures of ``jobs`` (they have succeeded since)."""
    jobs = set(jobs)
    if any(e["job"] in jobs for e in read_failures(results)):
        _rewrite_failures(Path(results), lambda e: e["job"] not in jobs, [])
