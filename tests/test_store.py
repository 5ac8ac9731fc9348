"""The JSONL results store: round trip, refused versions, corrupt files, atomic appends."""

import json

import pytest
from sample_records import make_record

from compbench.errors import CorruptResultsError, SchemaVersionError
from compbench.record import REQUIRED_FIELDS, SCHEMA_VERSION, validate_record
from compbench.store import append_records, iter_records, load_records, read_records


def test_round_trip(tmp_path):
    path = tmp_path / "results.jsonl"
    first, second = make_record(), make_record(model="bert-base", macs=5, latency_ms=None)
    del second["latency_ms"]
    append_records(path, [first])
    append_records(path, [second])
    assert read_records(path) == [first, second]
    frame = load_records(path)
    assert list(frame["model"]) == ["distilhubert", "bert-base"]
    assert frame.loc[0, "latency_ms.median"] == 2.0
    assert frame.loc[0, "latency_ms.samples"] == [2.0] * 12
    assert frame.loc[1, "macs"] == 5


def test_unknown_schema_version_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(make_record(schema_version=99)) + "\n")
    with pytest.raises(SchemaVersionError, match=r"old.jsonl:1: results written with schema_version 99"):
        load_records(path)


def test_migration_is_applied_when_known(tmp_path, monkeypatch):
    from compbench import store

    old = make_record(schema_version=0)
    old.pop("dtype")
    monkeypatch.setitem(store.MIGRATIONS, 0, lambda r: {**r, "schema_version": 1, "dtype": "float32"})
    path = tmp_path / "v0.jsonl"
    path.write_text(json.dumps(old) + "\n")
    assert read_records(path)[0]["dtype"] == "float32"


@pytest.mark.parametrize("line,message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"model": "x"}), "no integer schema_version"),
    (json.dumps({"schema_version": SCHEMA_VERSION, "model": "x"}), "missing key"),
])
def test_corrupt_files_are_refused_with_the_line_number(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make_record()) + "\n" + line + "\n")
    with pytest.raises(CorruptResultsError, match=rf"bad.jsonl:2: .*{message}"):
        load_records(path)


def test_appending_to_a_corrupt_file_writes_nothing(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("{broken\n")
    with pytest.raises(CorruptResultsError):
        append_records(path, [make_record()])
    assert path.read_text() == "{broken\n"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_an_invalid_record_is_not_written(tmp_path):
    path = tmp_path / "new.jsonl"
    bad = make_record()
    del bad["macs"]
    with pytest.raises(CorruptResultsError, match="missing key 'macs'"):
        append_records(path, [make_record(), bad])
    assert not path.exists()


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorruptResultsError, match="does not exist"):
        load_records(tmp_path / "nope.jsonl")


def test_schema_lists_the_documented_keys():
    for key in ("schema_version", "model", "compression", "params", "params_nonzero", "macs",
                "macs_effective", "device", "threads", "environment", "weights", "input"):
        assert key in REQUIRED_FIELDS
    assert "latency_ms" not in REQUIRED_FIELDS  # absent with --no-latency
    assert validate_record(make_record()) == []
    assert validate_record(make_record(params=True)) == ["'params' must be an integer, got True"]


def test_iter_records_reads_line_by_line_and_drops_what_it_is_told(tmp_path):
    path = tmp_path / "results.jsonl"
    append_records(path, [make_record(), make_record(model="bert-base")])
    with path.open("a", encoding="utf-8") as handle:  # a blank line, then a damaged record
        handle.write("\n" + json.dumps(make_record(params="many")) + "\n")
    read = iter_records(path, without=("latency_ms.samples", "no_such.field", "environment.cores"))
    first = next(read)  # one line at a time: the damaged record is not read yet
    assert "samples" not in first["latency_ms"] and first["latency_ms"]["median"] == 2.0
    assert "cores" not in first["environment"] and first["model"] == "distilhubert"
    assert next(read)["model"] == "bert-base"
    with pytest.raises(CorruptResultsError, match=r"results.jsonl:4: invalid record: 'params' must be an integer"):
        next(read)
    with pytest.raises(CorruptResultsError, match="does not exist"):
        list(iter_records(tmp_path / "none.jsonl"))
