"""The CLI: formats, store output, defaults and error paths, called in-process."""

import json

import pytest
from conftest import PROGRESS_LINE

from compbench.cli.main import build_parser, main
from compbench.cli.measure import options_from_args
from compbench.errors import CompbenchError
from compbench.store import read_records


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_acceptance_json_for_hubert_base(capsys):
    code, out, _ = run_cli(capsys, "measure", "--model", "hubert-base", "--weights", "random",
                           "--seconds", "10", "--no-latency", "--format", "json")
    assert code == 0
    [record] = json.loads(out)
    assert record["params"] == 94_371_712
    assert record["macs"] == 74_066_523_136
    assert record["compression"] is None and "latency_ms" not in record
    for key in ("model", "params_nonzero", "macs_effective", "device", "threads", "schema_version"):
        assert key in record


def test_repeated_models_and_bert_counts(capsys):
    code, out, _ = run_cli(capsys, "measure", "--model", "bert-base", "--model", "distilbert-base",
                           "--tokens", "128", "--no-latency", "--format", "json")
    records = json.loads(out)
    assert code == 0 and [r["model"] for r in records] == ["bert-base", "distilbert-base"]
    assert (records[0]["params"], records[0]["macs"]) == (109_482_240, 11_174_215_680)


def test_table_and_csv_formats(capsys):
    code, out, _ = run_cli(capsys, "measure", "--model", "distilhubert", "--seconds", "1", "2", "--no-latency")
    assert code == 0 and "distilhubert" in out and "1 s" in out and "2 s" in out and "23,491,968" in out
    code, out, _ = run_cli(capsys, "measure", "--model", "distilhubert", "--seconds", "1", "--no-latency",
                           "--format", "csv")
    header, row = out.strip().splitlines()
    assert "macs" in header.split(",") and "distilhubert" in row


def test_latency_json_has_the_documented_keys(capsys, tmp_path):
    out_file = tmp_path / "r.jsonl"
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--tokens", "8", "--threads", "1",
                           "--budget", "0.3", "--format", "json", "--out", str(out_file))
    assert code == 0
    [record] = json.loads(out)
    assert set(record["latency_ms"]) >= {"median", "iqr", "ci95_low", "ci95_high", "runs"}
    assert read_records(out_file) == [record]


def test_out_appends_and_refuses_a_corrupt_file_before_measuring(capsys, tmp_path):
    out_file = tmp_path / "r.jsonl"
    for _ in range(2):
        assert run_cli(capsys, "measure", "--model", "minilm-l6", "--tokens", "4", "--no-latency",
                       "--out", str(out_file))[0] == 0
    assert len(read_records(out_file)) == 2
    out_file.write_text("garbage\n")
    code, out, err = run_cli(capsys, "measure", "--model", "minilm-l6", "--no-latency", "--out", str(out_file))
    assert code == 2 and out == ""
    assert err.strip().startswith("compbench: error:") and "not valid JSON" in err and err.count("\n") == 1
    assert out_file.read_text() == "garbage\n"


@pytest.mark.parametrize("argv,message", [
    (["measure", "--model", "hubret-base"], "Did you mean: hubert-base"),
    (["measure", "--model", "bert-base", "--tokens", "9999", "--no-latency"], "from 1 to 512"),
    (["measure", "--model", "distilhubert", "--budget", "0"], "--budget must be > 0"),
    (["measure", "--model", "minilm-l6", "--seconds", "1"],
     "--seconds sets the input sizes of speech models, and no model of this run is one (minilm-l6: text): give "
     "--tokens"),
    (["measure", "--model", "minilm-l6", "--model", "minilm-l6"], "--model minilm-l6 is given twice: give each once"),
    (["measure", "--model", "minilm-l6", "--tokens", "8", "16", "8"], "--tokens 8 is given twice"),
    (["measure", "--model", "minilm-l6", "--runtime", "eager", "--runtime", "eager"], "--runtime eager is given twice"),
    (["measure", "--model", "minilm-l6", "--compress", "layer_drop=0.5,bf16", "--compress", "layer_drop=0.5,bf16"],
     "--compress layer_drop=0.5,bf16 is given twice (with the same options): give each pipeline once"),
    (["measure", "--model", "distilhubert", "--rel-ci", "2"], "--rel-ci"),
    (["measure", "--model", "distilhubert", "--max-runs", "2"], "--max-runs must be >= 6"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_no_arguments_means_the_embedded_default():
    options = options_from_args(build_parser().parse_args(["measure"]))
    assert list(options.models) == ["hubert-base", "bert-base"]
    assert options.seconds is options.tokens is None  # not given: each model's default ...
    assert list(options.sizes("speech")) == [10.0] and list(options.sizes("text")) == [128]  # ... 10 s, 128 tokens
    assert options.device == "cpu" and options.latency and options.weights is None


def test_a_size_flag_that_only_some_models_use_warns_on_the_records_of_the_others(capsys):
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--model", "distilhubert", "--seconds", "1",
                           "--no-latency", "--format", "json")
    text, speech = json.loads(out)
    assert code == 0 and (text["input"]["tokens"], speech["input"]["seconds"]) == (128, 1.0)
    assert text["warnings"] == ["--seconds sets speech models' sizes, not this text model's: measured at the "
                                "default --tokens 128"] and speech["warnings"] == []
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--model", "distilhubert", "--seconds", "1",
                           "--tokens", "8", "--no-latency", "--format", "json")
    assert [record["warnings"] for record in json.loads(out)] == [[], []]  # each model has its own sizes


def test_the_python_api_takes_what_the_command_line_takes(capsys):
    from compbench.measure import MeasureOptions, measure

    records = measure(MeasureOptions(models="minilm-l6", compress=["head_pruning=0.5,low_rank=0.3"], tokens=8,
                                     latency=False, memory=False))
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--compress", "head_pruning=0.5,low_rank=0.3",
                           "--tokens", "8", "--no-latency", "--no-memory", "--format", "json")
    assert [(r["model"], r["compression"], r["input"], r["params"], r["macs"]) for r in records] == [
        (r["model"], r["compression"], r["input"], r["params"], r["macs"]) for r in json.loads(out)]
    with pytest.raises(CompbenchError, match="Did you mean: head_pruning"):
        MeasureOptions(models="minilm-l6", compress="head_prunin=0.5")


def test_ls_lists_every_preset(capsys):
    from compbench.models import PRESETS

    code, out, _ = run_cli(capsys, "ls", "--format", "json")
    assert code == 0
    assert [m["name"] for m in json.loads(out)["models"]] == PRESETS.names()
    code, out, _ = run_cli(capsys, "ls")
    assert all(name in out for name in PRESETS.names())


def test_ls_names_the_extra_of_a_runtime_that_is_not_installed_as_written(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails, as where it is missing
    code, out, _ = run_cli(capsys, "ls")
    assert code == 0 and "not installed: pip install 'compbench[onnx]'" in out  # not read as rich markup


def test_ls_and_measure_tables_fit_the_terminal_and_progress_off_a_terminal_is_a_line_per_stage(capsys, monkeypatch,
                                                                                                  tmp_path):
    """No line wider than $COLUMNS; what is left out to get there is named under the table. ``measure`` runs
    once, at 80 columns; its records are rendered again at 100, 120 and 200 by the function it prints with.
    Its stderr (not a terminal here) is its progress: one line per stage, each variant compressed named."""
    from compbench.cli.output import render
    from compbench.store import iter_records

    monkeypatch.setenv("COLUMNS", "80")
    code, measured, err = run_cli(capsys, "measure", "--model", "minilm-l6", "--tokens", "8", "--threads", "1",
                                  "--budget", "0.2", "--max-runs", "6", "--compress", "head_pruning=0.5,low_rank=0.3",
                                  "--compress", "layer_drop=0.5", "--out", str(tmp_path / "r.jsonl"))
    assert code == 0, err
    stages = [PROGRESS_LINE.sub("", line) for line in err.splitlines()]
    assert all(PROGRESS_LINE.match(line) for line in err.splitlines())
    assert stages[:3] == ["loaded minilm-l6", "compressing minilm-l6: head_pruning=0.5,low_rank=0.3",
                          "compressing minilm-l6: layer_drop=0.5"]
    assert stages[3] == "measuring fp32 GEMM peak" and stages[-2:] == ["measuring fp32 GEMM peak again", "done"]
    timing = stages[4:-2]  # a line each time the variants still being timed change, never the same twice
    assert timing and all(line.startswith("timing minilm-l6 ") for line in timing) and len(set(timing)) == len(timing)
    records = list(iter_records(tmp_path / "r.jsonl"))
    assert render(records, "table") == measured  # what measure printed is what render gives at $COLUMNS
    for width in (80, 100, 120, 200):
        monkeypatch.setenv("COLUMNS", str(width))
        code, listing, _ = run_cli(capsys, "ls")
        measured = render(records, "table")
        for out in (listing, measured):
            assert max(len(line) for line in out.splitlines()) <= width
        assert "head_pruning=0.5,low_rank=0.3" in measured.replace("\n", "").replace(" ", "").replace("│", "")
        assert ("left out at" in measured) is (width < 160) and "speedup" in measured and "median ms" in measured


def test_stage_lines_print_a_line_per_stage_and_a_long_stage_again_with_how_far_it_has_got():
    from compbench.cli.output import StageLines

    lines, now = [], [0.0]
    progress = StageLines(lines.append, every_s=60, clock=lambda: now[0])
    for second, description, done in [(0, "loaded distilhubert", 0.0),
                                      (0, "compressing distilhubert: head_pruning=0.25", 0),
                                      (1, "compressing distilhubert: head_pruning=0.5", 0),
                                      (2, "distill step 1/400 loss 2.310", 0.01),
                                      (30, "distill step 200/400 loss 0.912", 0.5),
                                      (63, "distill step 300/400 loss 0.700", 0.75),
                                      (70, "distill step 301/400 loss 0.698", 0.76), (125, "timing x", 0.9),
                                      (3725, "done", 1.0)]:
        now[0] = second
        progress(description, done)
    assert lines == ["[0:00] loaded distilhubert\n", "[0:00] compressing distilhubert: head_pruning=0.25\n",
                     "[0:01] compressing distilhubert: head_pruning=0.5\n", "[0:02] distill step 1/400 loss 2.310\n",
                     "[1:03] distill step 300/400 loss 0.700 (75% done)\n", "[2:05] timing x\n", "[62:05] done\n"]


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    [script] = [e for e in entry_points(group="console_scripts") if e.name == "compbench"]
    assert script.value == "compbench.cli.main:main"


def test_compress_then_measure_the_saved_variant(capsys, tmp_path):
    out_dir = tmp_path / "variant"
    code, out, _ = run_cli(capsys, "compress", "--model", "distilhubert", "--compress", "ffn_pruning=0.5",
                           "--out", str(out_dir))
    assert code == 0 and json.loads(out)["steps"][0]["removed"] == 3072
    code, out, _ = run_cli(capsys, "measure", "--model", "distilhubert", "--compress", "ffn_pruning=0.5",
                           "--seconds", "1", "--no-latency", "--format", "json")
    in_memory = json.loads(out)[1]
    code, out, _ = run_cli(capsys, "measure", "--model", str(out_dir), "--seconds", "1", "--no-latency",
                           "--format", "json")
    [reloaded] = json.loads(out)
    assert reloaded["macs"] == in_memory["macs"] and reloaded["params"] == in_memory["params"]
    assert reloaded["compression"] == in_memory["compression"]
    assert (reloaded["weights"], reloaded["model_source"]) == ("random", "preset")  # the preset's random weights


def test_a_variant_compressed_three_times_records_every_step_in_order_and_its_base_model(capsys, tmp_path):
    """compress, save, reload and compress again, three times: the manifest and measure's record list the
    steps of every round in order, and name the model the first round compressed; the counts are those of the
    three steps applied at once."""
    rounds = ["head_pruning=0.5,low_rank=0.3", "layer_drop=0.5", "ffn_pruning=0.25"]
    model = "minilm-l6"
    for number, spec in enumerate(rounds):
        weights = ["--weights", "random"] if number == 0 else []
        code, out, err = run_cli(capsys, "compress", "--model", model, *weights, "--compress", spec,
                                 "--out", str(tmp_path / f"round{number}"))
        assert code == 0, err
        model = str(tmp_path / f"round{number}")
    names = ["head_pruning", "low_rank", "layer_drop", "ffn_pruning"]
    assert [step["name"] for step in json.loads(out)["steps"]] == names  # what compress prints ...
    manifest = json.loads((tmp_path / "round2" / "compbench_manifest.json").read_text())
    assert [(step["name"], step["amount"]) for step in manifest["compression"]] == list(zip(
        names, [0.5, 0.3, 0.5, 0.25], strict=True))  # ... is what it saved
    assert (manifest["source"]["model"], manifest["source"]["weights"]) == ("minilm-l6", "random")
    code, out, _ = run_cli(capsys, "measure", "--model", model, "--tokens", "8", "--no-latency", "--format", "json")
    [chained] = json.loads(out)
    assert [step["name"] for step in chained["compression"]] == names and len(chained["manifest"]) == 4
    assert chained["base_model"] == manifest["source"] and chained["weights"] == "random"
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--compress", ",".join(rounds), "--tokens",
                           "8", "--no-latency", "--format", "json")
    at_once = json.loads(out)[1]
    assert (chained["params"], chained["macs"]) == (at_once["params"], at_once["macs"])
    assert chained["compression"] == at_once["compression"] and "base_model" not in at_once


@pytest.mark.parametrize("spec,message", [
    ("head_prunin=0.5", "Did you mean: head_pruning"),
    ("ffn_pruning=1.5", "amount must be in [0, 1)"),
])
def test_compress_errors_write_nothing(capsys, tmp_path, spec, message):
    code, out, err = run_cli(capsys, "compress", "--model", "distilhubert", "--compress", spec,
                             "--out", str(tmp_path / "v"))
    assert code == 2 and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_table_shows_variants_and_speedups(capsys):
    code, out, _ = run_cli(capsys, "measure", "--model", "minilm-l6", "--tokens", "8", "--threads", "1",
                           "--budget", "0.2", "--compress", "layer_drop=0.5", "--compress", "bf16")
    assert code == 0 and "layer_drop=0.5" in out and "bf16" in out and "dense" in out and "×" in out


def test_ls_lists_compressors_with_options(capsys):
    code, out, _ = run_cli(capsys, "ls", "--format", "json")
    compressors = {c["name"]: c for c in json.loads(out)["compressors"]}
    assert set(compressors) == {"accuracy_driven", "bf16", "fp16", "budget_pruning", "conv_pruning", "distill",
                                "distill_prune", "early_exit", "ffn_pruning", "head_pruning", "int8_dynamic",
                                "layer_drop", "low_rank", "ort_int8", "weight_pruning"}
    assert {name: c["task_data"] for name, c in compressors.items() if c["task_data"] != "none"} == {
        "accuracy_driven": "required", "budget_pruning": "required", "distill": "required", "distill_prune": "required",
        "conv_pruning": "optional", "early_exit": "required", "ffn_pruning": "optional", "head_pruning": "optional"}
    assert {t["name"] for t in json.loads(out)["tasks"]} == {"rt-polarity", "fsdd-digits", "fsdd-speakers",
                                                            "fsdd-sequences"}
    assert compressors["head_pruning"]["options"]["scope"]["choices"] == ["global", "layer"]
    assert compressors["bf16"]["takes_amount"] is False
    assert compressors["accuracy_driven"]["options"]["loss_rise"]["type"] == "float or null"
    assert compressors["accuracy_driven"]["options"]["epsilon"]["type"] == "float"
    assert {name: c["runtimes"] for name, c in compressors.items() if c["runtimes"]} == {
        "int8_dynamic": ["eager", "compile"], "ort_int8": ["onnxruntime"]}
    runtimes = {r["name"]: r for r in json.loads(out)["runtimes"]}
    assert set(runtimes) == {"eager", "compile", "onnxruntime"} and runtimes["eager"]["available"]
    assert runtimes["onnxruntime"]["extra"] == "onnx" and runtimes["eager"]["extra"] is None


def test_validate_command(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "validate")
    assert code == 0 and out.count("ok ") == 4 and "ok fsdd-sequences v1 (audio, transcripts)" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\n")
    code, out, err = run_cli(capsys, "validate", str(bad))
    assert code == 2 and "bad.yaml: missing key 'version'" in err and err.count("\n") == 1


def test_an_unwritable_results_file_is_one_error_and_nothing_is_measured(capsys, tmp_path):
    code, out, err = run_cli(capsys, "measure", "--model", "minilm-l6", "--tokens", "8", "--no-latency",
                             "--out", "/proc/compbench.jsonl")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("compbench: error: cannot write results to /proc/compbench.jsonl")
    directory = tmp_path / "a-folder"
    directory.mkdir()
    code, out, err = run_cli(capsys, "measure", "--model", "minilm-l6", "--no-latency", "--out", str(directory))
    assert code == 2 and "is a directory" in err and list(directory.iterdir()) == []
