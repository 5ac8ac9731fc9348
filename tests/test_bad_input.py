"""Bad input as a new user gives it: one ``compbench: error:`` line, exit status 2, nothing written, and
before any work (an output that cannot be written, sizes no model takes, a misspelled options key, YAML
that does not parse, a closed pipe)."""

import io
import re
import sys

import pytest
import yaml
from conftest import without_progress
from test_cli import run_cli
from tiny_models import build_tiny

from compbench.cli.main import main
from compbench.sweep.schema import load_sweep

NO_MODEL = "no-such-org/no-such-model"  # loading it would fail: an --out error must come first


def one_error(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("compbench: error: ") and "Traceback" not in err, err
    return lines[0]


def every_verb(out: str, tmp_path) -> dict[str, list[str]]:
    """Each verb that writes, given ``out`` as what it writes, and arguments it would otherwise run with."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"version": 1, "name": "s", "models": ["minilm-l6"],
                                     "measure": {"latency": False}}))
    return {
        "measure": ["measure", "--model", NO_MODEL, "--out", out],
        "compress": ["compress", "--model", NO_MODEL, "--compress", "layer_drop=0.5", "--out", out],
        "finetune": ["finetune", "--model", NO_MODEL, "--task", "rt-polarity", "--out", out],
        "sweep": ["sweep", str(sweep), "--out", out],
        "pipelines": ["pipelines", "--model", NO_MODEL, "--task", "rt-polarity", "--op", "layer_drop=0.5",
                      "--out", out],
        "pipelines --report": ["pipelines", "--model", NO_MODEL, "--task", "rt-polarity", "--op", "layer_drop=0.5",
                               "--out", str(tmp_path / "r.jsonl"), "--report", out],
        "report": ["report", str(tmp_path / "none.jsonl"), "--out", out],
    }


VERBS = ["measure", "compress", "finetune", "sweep", "pipelines", "pipelines --report", "report"]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_checks_that_its_out_can_be_written_before_any_work(verb, capsys, tmp_path):
    missing = str(tmp_path / "nodir" / "sub" / "x")
    for out, says in (("/proc/v", "cannot write .* to /proc/v: .* in /proc"),
                      (missing, "the folder .*nodir/sub does not exist; create it first")):
        argv = every_verb(out, tmp_path)[verb]
        before = sorted(tmp_path.rglob("*"))
        code, stdout, err = run_cli(capsys, *argv)
        line = one_error(err)
        assert code == 2 and stdout == "", line
        assert re.search(says, line), line
        assert sorted(tmp_path.rglob("*")) == before  # nothing made, not even the missing folders
    assert not (tmp_path / "nodir").exists()


def test_a_report_folder_is_made_in_a_folder_that_exists(capsys, tmp_path):
    from sample_records import append_many

    results = tmp_path / "r.jsonl"
    append_many(str(results), 0, 2)
    code, _, err = run_cli(capsys, "report", str(results), "--out", str(tmp_path / "new"), "--format", "csv")
    assert code == 0, err
    assert (tmp_path / "new" / "landscape.csv").is_file()


@pytest.mark.parametrize(("seconds", "says"), [
    # distilhubert's first convolution: 512 channels at stride 5 over 1e9 s of 16 kHz audio, 4 bytes each
    ("1e9", "--seconds 1e+09 is too long for hubert: its first convolution's output alone would take "
            f"{512 * (16_000 * 10**9 // 5) * 4 / 2**30:,.1f} GiB"),
    ("nan", "--seconds nan: give a finite number"), ("inf", "--seconds inf: give a finite number"),
    ("-inf", "--seconds -inf: give a finite number")])
def test_sizes_that_are_not_finite_or_do_not_fit_in_memory_are_one_error(seconds, says, capsys):
    code, out, err = run_cli(capsys, "measure", "--model", "distilhubert", f"--seconds={seconds}", "--no-latency")
    assert code == 2 and out == "" and says in one_error(err)


def write_sweep(path, **fields) -> str:
    path.write_text(yaml.safe_dump({"version": 1, "name": "s", "measure": {"latency": False}, **fields}))
    return str(path)


def test_a_sweep_of_sizes_a_model_cannot_take_is_refused_when_read(capsys, tmp_path):
    too_many = write_sweep(tmp_path / "t.yaml", models=["minilm-l6", "distilhubert"], sizes={"tokens": [64, 600]})
    code, out, err = run_cli(capsys, "sweep", too_many, "--out", str(tmp_path / "r.jsonl"), "--dry-run")
    assert code == 2 and one_error(err) == (
        f"compbench: error: {too_many}: sizes.tokens[1] for models[0] minilm-l6: --tokens 600 is out of range "
        "for bert: use a whole number from 1 to 512")
    long = tmp_path / "l.yaml"
    long.write_text("version: 1\nname: l\nmodels: [distilhubert]\nsizes: {seconds: [1, 1e9]}\n")  # 1e9: a number
    with pytest.raises(Exception, match=r"l.yaml: sizes.seconds\[1\] for models\[0\] distilhubert: --seconds 1e\+09 "
                                        "is too long"):
        load_sweep(long)
    assert not (tmp_path / "r.jsonl").exists()
    offline = write_sweep(tmp_path / "o.yaml", models=[NO_MODEL], sizes={"seconds": [1.0, float("nan")]})
    with pytest.raises(Exception, match=r"sizes.seconds\[1\]: must be a finite number > 0, got nan"):
        load_sweep(offline)  # a model whose config cannot be read now: the size is still checked


def test_a_misspelled_compressor_in_the_options_file_is_an_error_with_the_near_name(capsys, tmp_path):
    options = tmp_path / "o.yaml"
    options.write_text("head_prunin: {importance: magnitude}\n")
    code, out, err = run_cli(capsys, "measure", "--model", "minilm-l6", "--compress", "head_pruning=0.5",
                             "--compress-options", str(options), "--no-latency")
    line = one_error(err)
    assert code == 2 and f"{options}: unknown compressor 'head_prunin'. Did you mean: head_pruning" in line


@pytest.mark.parametrize(("text", "says"), [
    # libyaml's words (PyYAML's own parser, where PyYAML was built without libyaml, words them a little differently)
    ("version: 1\nname: s\nmodels: [minilm-l6\n",
     r"not valid YAML: line 4, column 1: (did not find )?expected ',' or ']'"),
    ("version: 1\nname: s\n  models: x\n",
     "not valid YAML: line 3, column 9: mapping values are not allowed (in this context|here)"),
    ("", "the sweep file is empty"), ("# nothing but a comment\n", "the sweep file is empty"),
    ("\xff\xfe", None)])
def test_yaml_errors_name_the_file_and_fit_on_one_line(text, says, capsys, tmp_path):
    path = tmp_path / "s.yaml"
    if says is None:
        path.write_bytes(b"\xff\xfe")
        says = "it is not UTF-8 text"
    else:
        path.write_text(text)
    code, out, err = run_cli(capsys, "sweep", str(path), "--out", str(tmp_path / "r.jsonl"), "--dry-run")
    line = one_error(err)
    assert code == 2 and str(path) in line and re.search(says, line) and "<unicode string>" not in line


def test_an_empty_or_broken_options_file_names_itself(capsys, tmp_path):
    for name, text, says in (("o.yaml", "", "the compressor options file is empty"),
                             ("o.json", '{"head_pruning": }', "not valid JSON: line 1, column 18: Expecting value"),
                             ("p.yaml", "- {name: head_pruning, amount: 5e-1\n", "not valid YAML: line 2, column 1")):
        path = tmp_path / name
        path.write_text(text)
        flag = ["--compress", str(path)] if name.startswith("p") else ["--compress", "head_pruning=0.5",
                                                                       "--compress-options", str(path)]
        code, _, err = run_cli(capsys, "measure", "--model", "minilm-l6", *flag, "--no-latency")
        assert code == 2 and f"{path}: {says}" in one_error(err)


def test_1e_notation_in_yaml_is_a_number(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("- {name: head_pruning, amount: 5e-1}\n")
    from compbench.compression.spec import parse_spec

    [step] = parse_spec(str(path))
    assert step.amount == 0.5 and isinstance(step.amount, float)


@pytest.mark.parametrize("name", ["org/" + "a" * 300, "a" * 300])
def test_a_model_name_longer_than_a_path_may_be_is_one_error(name, capsys):
    code, out, err = run_cli(capsys, "measure", "--model", name, "--no-latency")
    line = one_error(err)
    assert code == 2 and f"({len(name)} characters)" in line and len(line) < 400


class ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(monkeypatch, capsys, tmp_path):
    model = tmp_path / "tiny"
    build_tiny("bert").save_pretrained(model)
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["measure", "--model", str(model), "--tokens", "8", "--no-latency", "--format", "json",
                 "--out", str(tmp_path / "r.jsonl")]) == 141  # as a command ended by SIGPIPE
    err = capsys.readouterr().err
    assert "[0:00] loaded" in err and without_progress(err) == ""  # its progress, no error, no traceback
    assert (tmp_path / "r.jsonl").read_text().count("\n") == 1  # the records were written before the output


@pytest.mark.parametrize("weights", ["pretrained", "random"])
def test_a_hub_id_where_the_hub_cannot_be_reached_is_one_error_at_once(weights, monkeypatch, capsys):
    """No network and HF_HUB_OFFLINE unset, as on a user's offline machine: one connection attempt, then the
    local cache alone (huggingface_hub retried each file five times, for a minute, printing each retry)."""
    import socket

    from huggingface_hub import constants

    from compbench.models import checkpoints

    attempts = []

    def unreachable(address, timeout=None):
        attempts.append((address, timeout))
        raise OSError("Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    checkpoints.hub_reachable.cache_clear()
    try:
        code, out, err = run_cli(capsys, "measure", "--model", "no-such-org/no-such-model", "--weights", weights,
                                 "--no-latency")
    finally:
        checkpoints.hub_reachable.cache_clear()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Retrying" not in err
    assert err.startswith("compbench: error: no-such-org/no-such-model is a hub id, but the Hugging Face Hub cannot "
                          "be reached from here and no-such-org/no-such-model is not in the local cache")
    assert attempts == [(("huggingface.co", 443), checkpoints.HUB_TIMEOUT_S)]  # checked once
