"""Every file compbench reads, generated malformed (hypothesis): sweep files, task files, compressor option
files, pipeline files and results files, mutated from a valid twin (a value replaced by one of another kind, a
key dropped, added or misspelled, the text truncated or spliced, JSONL lines cut, interleaved or of another
schema version).

For every generated file, either compbench accepts it (and, for a sweep, plans it as the valid twin's
machinery would), or the command ends with one ``compbench: error:`` line that names the file, exit status 2,
no traceback and nothing written. Anything else (an exception that is not compbench's, a second line, a
file written) fails the test with the generated file as its example.

Profiles: ``ci`` (the default: a few hundred cases per file kind, about a minute in all on 2 cores) and
``long`` (``HYPOTHESIS_PROFILE=long``: ten thousand per kind)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_records import make_record

from compbench.cli.main import main
from compbench.compression.spec import load_options_file, parse_spec
from compbench.errors import CompbenchError
from compbench.store import read_records

settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

VALID_SWEEP = {
    "version": 1, "name": "generated", "description": "a valid twin",
    "models": ["minilm-l6", {"model": "distilhubert", "weights": "random"}],
    "sizes": {"seconds": [1.0, 2.0], "tokens": [16, 64], "batch": 1},
    "compressors": {"head_pruning": {"amounts": [0.25, 0.5], "options": {"importance": "magnitude"}},
                    "layer_drop": {"amounts": [0.5]}},
    "pipelines": [["head_pruning=0.5", "ffn_pruning=0.5"]],
    "measure": {"latency": False, "memory": False, "threads": 1},
}
VALID_TASK = {
    "schema_version": 1, "name": "generated", "version": 1, "description": "a valid twin", "input": "text",
    "source": {"kind": "csv", "path": "toy", "files": {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"},
               "text_column": "text", "label_column": "label"},
    "labels": ["negative", "positive"], "metric": "accuracy", "protocol": "finetune", "evaluate_on": "test",
}
VALID_OPTIONS = {"head_pruning": {"importance": "magnitude"}, "low_rank": {"energy": 0.9, "targets": "ffn"}}
VALID_PIPELINE = [{"name": "head_pruning", "amount": 0.5, "options": {"importance": "magnitude"}},
                  {"name": "layer_drop", "amount": 0.25}]

# values of every kind YAML and JSON can hold, the awkward ones included
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["", "1e9", "head_pruning", "minilm-l6", "no-such-org/x", "../..", "/proc/x",
                                     "a" * 300, "0.5", "-1", "null", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)



def fresh_folder(tmp_path_factory, name: str) -> Path:
    """A new empty folder for one generated example (``mktemp`` lists every numbered folder it made before it
    picks the next number: quadratic in the hundreds of examples here, 6 of this file's 65 s)."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_path_factory.getbasetemp()))

def _paths(value, prefix=()):
    """Every (path, value) inside a document of dicts and lists."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


@st.composite
def mutated(draw, valid):
    """``valid`` with one to three mutations at generated places."""
    document = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path, _ = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                document = draw(VALUES)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "drop", "add", "misspell"]))
        if action == "replace":
            parent[last] = draw(VALUES)
        elif action == "drop":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(VALUES)
        elif action == "add":
            parent.insert(last, draw(VALUES))
        elif isinstance(parent, dict) and isinstance(last, str) and last:
            parent[last[:-1] + draw(st.sampled_from("xs_"))] = parent.pop(last)
        if not isinstance(document, (dict, list)):
            break
    return document


@st.composite
def spliced_text(draw, text: str):
    """``text`` cut short, or with a generated piece put in at a generated place."""
    at = draw(st.integers(0, len(text)))
    if draw(st.booleans()):
        return text[:at]
    return text[:at] + draw(st.text(alphabet=st.sampled_from(list(":-[]{},#&*!|>'\"%@` \n\t\\ax19.e")),
                                     max_size=8)) + text[at:]


def file_text(document, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(document, allow_nan=True)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def refused_with_one_line(code: int, err: str, path: Path) -> None:
    lines = err.splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("compbench: error: ") and "Traceback" not in err, err
    assert str(path) in lines[0] or path.name in lines[0], f"the error does not name {path}: {lines[0]}"


def listing(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


CASES: dict[str, int] = {}  # generated cases per file kind, printed at the end of the module


def counted(kind: str) -> None:
    CASES[kind] = CASES.get(kind, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print("\ngenerated cases: " + ", ".join(f"{kind} {count}" for kind, count in sorted(CASES.items())))


def check_sweep(tmp_path: Path, text: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "results.jsonl"
    before = listing(tmp_path)
    code, _, err = run_cli("sweep", str(path), "--out", str(out), "--dry-run")
    if code != 0:
        refused_with_one_line(code, err, path)
    assert listing(tmp_path) == before  # a dry run writes nothing, accepted or not
    counted("sweep file")


@settings(settings.get_profile(PROFILE))
@given(document=mutated(VALID_SWEEP))
def test_generated_sweep_files(document, tmp_path_factory):
    check_sweep(fresh_folder(tmp_path_factory, "sweep"), file_text(document))


@settings(settings.get_profile(PROFILE))
@given(text=spliced_text(file_text(VALID_SWEEP)))
def test_generated_sweep_texts(text, tmp_path_factory):
    check_sweep(fresh_folder(tmp_path_factory, "sweep-text"), text)


def check_task(tmp_path: Path, text: str) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli("validate", str(path))
    if code != 0:
        refused_with_one_line(code, err, path)
    assert listing(tmp_path) == [path]
    counted("task file")


@settings(settings.get_profile(PROFILE))
@given(document=mutated(VALID_TASK))
def test_generated_task_files(document, tmp_path_factory):
    check_task(fresh_folder(tmp_path_factory, "task"), file_text(document))


@settings(settings.get_profile(PROFILE))
@given(text=spliced_text(file_text(VALID_TASK)))
def test_generated_task_texts(text, tmp_path_factory):
    check_task(fresh_folder(tmp_path_factory, "task-text"), text)


def refused_naming(path: Path, read) -> None:
    """``read()`` returns, or raises one CompbenchError whose one-line message names ``path``."""
    try:
        read()
    except CompbenchError as err:
        message = str(err)
        assert "\n" not in message and (str(path) in message or path.name in message), message


@settings(settings.get_profile(PROFILE))
@given(document=mutated(VALID_OPTIONS), as_json=st.booleans())
def test_generated_compressor_option_files(document, as_json, tmp_path_factory):
    path = fresh_folder(tmp_path_factory, "options") / ("options.json" if as_json else "options.yaml")
    path.write_text(file_text(document, as_json), encoding="utf-8")
    refused_naming(path, lambda: [parse_spec(spec, load_options_file(str(path)))
                                  for spec in ("head_pruning=0.5", "low_rank=0.5")])
    counted("compressor options file")


@settings(settings.get_profile(PROFILE))
@given(document=mutated(VALID_PIPELINE), as_json=st.booleans())
def test_generated_pipeline_files(document, as_json, tmp_path_factory):
    path = fresh_folder(tmp_path_factory, "pipeline") / ("pipeline.json" if as_json else "pipeline.yaml")
    path.write_text(file_text(document, as_json), encoding="utf-8")
    refused_naming(path, lambda: parse_spec(str(path)))
    counted("pipeline file")


def valid_lines() -> list[str]:
    return [json.dumps(make_record(run_id=f"r{i}"), sort_keys=True) for i in range(3)]


@st.composite
def results_text(draw):
    """Valid JSONL lines, some mutated: a record changed, a line cut, two lines spliced, another schema."""
    lines = valid_lines()
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["record", "cut", "splice", "schema", "blank", "garbage"]))
        if kind == "record":
            try:
                record = json.loads(lines[index])
            except json.JSONDecodeError:
                continue  # already cut or spliced
            lines[index] = json.dumps(draw(mutated(record)), allow_nan=True)
        elif kind == "cut":
            lines[index] = lines[index][:draw(st.integers(0, len(lines[index])))]
        elif kind == "splice":
            other = lines[(index + 1) % len(lines)]
            at = draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:at] + other
        elif kind == "schema":
            try:
                record = json.loads(lines[index])
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            record["schema_version"] = draw(st.one_of(st.integers(-3, 99), SCALARS))
            lines[index] = json.dumps(record, allow_nan=True)
        elif kind == "blank":
            lines.insert(index, draw(st.sampled_from(["", " ", "\t"])))
        else:
            lines[index] = draw(st.text(max_size=20))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


@settings(settings.get_profile(PROFILE))
@given(text=results_text())
def test_generated_results_files(text, tmp_path_factory):
    folder = fresh_folder(tmp_path_factory, "results")
    path = folder / "results.jsonl"
    path.write_text(text, encoding="utf-8")
    refused_naming(path, lambda: read_records(path))
    counted("results file")


@settings(settings.get_profile(PROFILE), max_examples=min(settings.get_profile(PROFILE).max_examples, 12))
@given(text=results_text())
def test_generated_results_files_through_compbench_report(text, tmp_path_factory):
    folder = fresh_folder(tmp_path_factory, "report")
    path = folder / "results.jsonl"
    path.write_text(text, encoding="utf-8")
    code, _, err = run_cli("report", str(path), "--out", str(folder / "report"), "--format", "csv")
    if code != 0:
        refused_with_one_line(code, err, path)
        assert not (folder / "report").exists()  # nothing half-written
    counted("results file (compbench report)")


@pytest.fixture(scope="module")
def saved_variant(tmp_path_factory):
    """A tiny BERT with half its heads pruned, saved as ``compbench compress`` saves it: (folder, its files)."""
    from tiny_models import build_tiny

    from compbench.compressors import COMPRESSORS
    from compbench.models.variants import save_variant

    folder = fresh_folder(tmp_path_factory, "variant") / "v"
    save_variant(COMPRESSORS.get("head_pruning")(build_tiny("bert"), 0.5), folder,
                 {"model": "tiny", "checkpoint": None, "weights": "random", "model_source": "local"})
    return folder, {path.name: path.read_bytes() for path in folder.iterdir()}


def _parses(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


@st.composite
def damaged_variant(draw, files: dict[str, bytes]):
    """The saved variant's files with one or two damaged: a JSON file mutated (a manifest or config that
    disagrees with the weights), the weights cut short or with bytes changed, a file gone."""
    files = dict(files)
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(sorted(files)))
        kind = draw(st.sampled_from(["mutate", "cut", "flip", "remove"]))
        if kind == "remove":
            del files[name]
            if not files:
                break
        elif kind == "mutate" and name.endswith(".json") and _parses(files[name]):
            files[name] = json.dumps(draw(mutated(json.loads(files[name]))), allow_nan=True).encode()
        elif not files[name]:
            continue  # already cut to nothing
        elif kind == "cut" or kind == "mutate":
            files[name] = files[name][:draw(st.integers(0, len(files[name]) - 1))]
        else:
            data = bytearray(files[name])
            for _ in range(draw(st.integers(1, 4))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
            files[name] = bytes(data)
    return files


@settings(settings.get_profile(PROFILE), max_examples=min(settings.get_profile(PROFILE).max_examples, 60))
@given(data=st.data())
def test_generated_damaged_variant_folders(saved_variant, data, tmp_path_factory):
    _, files = saved_variant
    damaged = data.draw(damaged_variant(files))
    folder = fresh_folder(tmp_path_factory, "damaged") / "v"
    folder.mkdir()
    for name, content in damaged.items():
        (folder / name).write_bytes(content)
    before = listing(folder)
    code, _, err = run_cli("measure", "--model", str(folder), "--tokens", "8", "--no-latency", "--no-memory")
    if code != 0:
        refused_with_one_line(code, err, folder)
    assert listing(folder) == before
    counted("saved variant folder")
