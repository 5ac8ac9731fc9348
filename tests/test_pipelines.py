"""The pipeline study: the orders it runs, its tags, and commutativity and cumulativeness computed exactly."""

import math
from pathlib import Path

import pytest
import yaml
from test_per_example import EXIT_TRAINING
from tiny_models import build_tiny

from compbench.cli.main import main
from compbench.compression.pipeline import check_pipeline
from compbench.compression.spec import parse_spec
from compbench.compressors import COMPRESSORS, Step
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions
from compbench.models import load_model
from compbench.pipeline_study import operator_labels, refusal, run_pipeline_study, study_orders
from compbench.report.pipelines import display_tables, plot_estimate_vs_measured, study_tables, summary_line
from compbench.store import read_records


def test_the_orders_of_a_study():
    assert study_orders(2) == [(0,), (1,), (0, 1), (1, 0)]
    three = study_orders(3)
    assert three[:3] == [(0,), (1,), (2,)] and len(three) == 3 + 6 and set(three[3:]) == {
        (0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)}
    with_subsets = study_orders(3, subsets=True)
    assert len(with_subsets) == 3 + 6 + 6 and (2, 0) in with_subsets and (0, 1, 2) in with_subsets


def fake(order, quality, macs, params, speedup=None, study="s1"):
    record = {"model": "m", "input": {"kind": "text", "tokens": 8, "batch": 1}, "macs": macs, "params": params,
              "quality": {"task": "t", "value": quality},
              "pipeline_study": {"id": study, "operators": ["A", "B"], "subsets": False, "basis": "input size",
                                 "order": list(order)}}
    if speedup is not None:
        record["speedup"] = speedup
    if not order:
        record["latency_ms"] = {"median": 10.0}
    return record


def test_commutativity_and_cumulativeness_are_computed_from_the_records():
    unrelated = fake((), 0.5, 1, 1)
    unrelated.pop("pipeline_study")  # a record of no study is ignored
    records = [fake((), 0.90, 100, 1000), fake((0,), 0.88, 50, 500, 1.6), fake((1,), 0.85, 80, 1000, 1.25),
               fake((0, 1), 0.82, 40, 500, 2.0), fake((1, 0), 0.80, 44, 520, 2.5), unrelated]
    [tables] = study_tables(records)
    commute = tables.commutativity.iloc[0]
    assert commute["operators"] == "A + B" and commute["orders"] == 2
    assert commute["quality spread"] == pytest.approx(0.02) and commute["macs spread"] == pytest.approx(0.04)
    assert commute["params spread"] == pytest.approx(0.02) and commute["latency spread"] == pytest.approx(0.1)
    rows = tables.cumulativeness.set_index("pipeline")
    a_then_b = rows.loc["A → B"]
    assert a_then_b["quality estimate"] == pytest.approx(0.90 - 0.02 - 0.05)
    assert a_then_b["quality error"] == pytest.approx(0.82 - 0.83)
    assert a_then_b["macs estimate"] == pytest.approx(0.5 * 0.8) and a_then_b["macs error"] == pytest.approx(0.0)
    assert a_then_b["params estimate"] == pytest.approx(0.5)
    assert a_then_b["latency estimate"] == pytest.approx(1 / 1.6 * 1 / 1.25)
    assert a_then_b["latency measured"] == pytest.approx(0.5)
    assert rows.loc["B → A"]["macs error"] == pytest.approx(0.44 - 0.4)
    line = summary_line(tables)
    assert "quality: order spread ≤ 2 points" in line and "macs: order spread ≤ 0.04" in line
    names = [title for title, _ in display_tables(tables)]
    assert names[0] == "pipelines" and len(display_tables(tables)[0][1]) == 5
    assert len(plot_estimate_vs_measured(tables).axes) == 4


def test_a_study_needs_two_operators_that_differ():
    with pytest.raises(InvalidInputError, match="2 to 5 operators"):
        run_pipeline_study("minilm-l6", "rt-polarity", [parse_spec("int8_dynamic")])
    with pytest.raises(InvalidInputError, match="must differ"):
        run_pipeline_study("minilm-l6", "rt-polarity", [parse_spec("int8_dynamic"), parse_spec("int8_dynamic")])


def test_a_study_of_two_static_operators_on_a_speech_model(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    operators = [parse_spec("head_pruning=0.5"), parse_spec("layer_drop=0.5")]
    options = MeasureOptions(seconds=[0.25], latency=False, data_root=data_root)
    records = run_pipeline_study(model_dir, task_file, operators, options=options)
    assert [r["pipeline_study"]["order"] for r in records] == [[], [0], [1], [0, 1], [1, 0]]
    assert all(r["pipeline_study"]["operators"] == ["head_pruning=0.5", "layer_drop=0.5"] for r in records)
    assert len({r["pipeline_study"]["id"] for r in records}) == 1
    assert records[0]["pipeline_study"]["basis"] == "input size"
    [tables] = study_tables(records)
    dense, alone_hp, alone_ld = records[:3]
    for record in records[3:]:
        row = tables.cumulativeness.set_index("pipeline").loc[" → ".join(
            ["head_pruning=0.5", "layer_drop=0.5"][i] for i in record["pipeline_study"]["order"])]
        assert row["macs measured"] == record["macs"] / dense["macs"]
        estimate = alone_hp["macs"] / dense["macs"] * alone_ld["macs"] / dense["macs"]
        assert row["macs estimate"] == pytest.approx(estimate)
        quality = record["quality"]["value"]
        expected = dense["quality"]["value"] + sum(r["quality"]["value"] - dense["quality"]["value"]
                                                   for r in (alone_hp, alone_ld))
        assert row["quality error"] == pytest.approx(quality - expected)
    assert math.isnan(tables.cumulativeness["latency measured"].iloc[0])  # not timed


def test_a_study_with_early_exit_is_measured_per_example(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    exit_file = tmp_path / "ee.yaml"
    exit_file.write_text(yaml.safe_dump([{"name": "early_exit", "options": {**EXIT_TRAINING, "threshold": 0.3}}]))
    operators = [parse_spec("head_pruning=0.5"), parse_spec(str(exit_file))]
    records = run_pipeline_study(model_dir, task_file, operators,
                                 options=MeasureOptions(seconds=[0.25], latency=False, data_root=data_root))
    per_example = [r for r in records if r["input"]["kind"] == "examples"]
    assert [r["pipeline_study"]["order"] for r in per_example] == [[], [0], [1], [0, 1], [1, 0]]
    assert all(r["pipeline_study"]["basis"] == "per example" for r in records)
    [tables] = study_tables(records)
    assert list(tables.pipelines["order"]) == [(), (0,), (1,), (0, 1), (1, 0)]  # the per-example records
    assert tables.pipelines["macs"].iloc[0] == 1.0


def test_pipelines_cli_writes_records_and_the_report(tmp_path, fine_tuned, capsys):
    model_dir, task_file, data_root = fine_tuned
    out, report = tmp_path / "study.jsonl", tmp_path / "report"
    code = main(["pipelines", "--model", model_dir, "--task", task_file, "--op", "head_pruning=0.5",
                 "--op", "layer_drop=0.5", "--seconds", "0.25", "--no-latency", "--data-root", data_root,
                 "--task-limit", "2", "--out", str(out), "--report", str(report)])
    printed = capsys.readouterr().out
    assert code == 0 and "commutativity" in printed and "head_pruning=0.5 → layer_drop=0.5" in printed
    assert len(read_records(out)) == 5
    quality = read_records(out)[0]["quality"]
    low, high = yaml.safe_load(Path(task_file).read_text())["source"]["split_ranges"][quality["split"]]
    whole = sum(low <= int(wav.stem.rsplit("_", 1)[1]) <= high for wav in Path(data_root, "tones").glob("*.wav"))
    assert quality["examples"][quality["split"]] == 2 and quality["split_examples"] == whole == 4  # counted here
    words = load_model(model_dir).label  # the study is titled by what the model is, not its folder
    assert words.endswith("trained here on tones")
    seen = f"{words}, evaluated on tones (2 of {quality['split_examples']} {quality['split']} examples):"
    markdown = (report / "landscape.md").read_text()
    assert seen in printed and seen in markdown  # a figure from part of the split says so where it is shown
    assert "latency: not measured (not timed)" in printed and "latency: not measured (not timed)" in markdown
    assert "nan" not in printed and "nan" not in markdown.replace("finetune", "")
    study = read_records(out)[0]["pipeline_study"]["id"]
    assert (report / f"pipeline_study_{study}.png").exists()
    assert "Pipeline study" in (report / "landscape.md").read_text()
    code = main(["pipelines", "--model", model_dir, "--task", task_file, "--op", "head_pruning=0.5",
                 "--out", str(tmp_path / "one.jsonl")])
    assert code == 2 and "2 to 5 operators" in capsys.readouterr().err
    assert not (tmp_path / "one.jsonl").exists()


def test_an_order_a_compressor_refuses_is_listed_not_run(tmp_path, fine_tuned):
    assert refusal(parse_spec("int8_dynamic,head_pruning=0.5")) == (
        "head_pruning needs floating-point weights and cannot follow int8_dynamic")
    assert refusal(parse_spec("head_pruning=0.5,int8_dynamic")) is None
    model_dir, task_file, data_root = fine_tuned
    records = run_pipeline_study(model_dir, task_file, [parse_spec("head_pruning=0.5"), parse_spec("int8_dynamic")],
                                 options=MeasureOptions(seconds=[0.25], latency=False, data_root=data_root))
    assert [r["pipeline_study"]["order"] for r in records] == [[], [0], [1], [0, 1]]
    assert records[0]["pipeline_study"]["skipped"] == [
        {"order": [1, 0], "reason": "head_pruning needs floating-point weights and cannot follow int8_dynamic"}]
    [tables] = study_tables(records)
    assert tables.commutativity.iloc[0][["orders", "refused"]].tolist() == [1, 1]
    assert [title for title, _ in display_tables(tables)][-1] == "orders not run"
    assert "1 orders refused" in summary_line(tables)
    with pytest.raises(InvalidInputError, match="cannot run: head_pruning needs floating-point weights"):
        run_pipeline_study(model_dir, task_file, [parse_spec("int8_dynamic,head_pruning=0.5"), parse_spec("bf16")])


def test_operators_are_named_briefly_unless_only_their_options_tell_them_apart():
    assert operator_labels([parse_spec("head_pruning=0.5"), parse_spec("int8_dynamic")]) == [
        "head_pruning=0.5", "int8_dynamic"]
    fisher = Step("head_pruning", 0.5, {"importance": "fisher"})
    assert operator_labels([parse_spec("head_pruning=0.5"), check_pipeline([fisher])]) == [
        "head_pruning=0.5", 'head_pruning=0.5 (importance: "fisher")']


def test_compressors_needing_float_weights_refuse_a_quantized_model():
    model = build_tiny("bert")
    quantized = COMPRESSORS.get("int8_dynamic")(model).model
    for name, amount in (("head_pruning", 0.5), ("ffn_pruning", 0.5), ("low_rank", 0.5), ("bf16", None)):
        with pytest.raises(InvalidInputError, match=f"{name} needs floating-point weights and the model's are "
                                                    f"quantized: apply {name} before the quantization step"):
            COMPRESSORS.get(name)(quantized, amount)
