"""The landscape report: Pareto marks checked independently, machines never mixed, all outputs written."""

import itertools
import json
import math
import random
import re
import shutil
from pathlib import Path

import pytest
from conftest import QUICK_SWEEP_GROUP
from sample_records import make_record

from compbench.cli.main import main
from compbench.errors import CorruptResultsError, InvalidInputError
from compbench.report import (
    group_tables,
    landscape_frame,
    load_landscape,
    pareto_mask,
    plot_latency_vs_params,
    plot_quality_vs_macs,
    plot_speedup_vs_predicted,
    write_report,
)
from compbench.store import append_records, record_failure

REPO = Path(__file__).resolve().parents[1]
MACHINE_A = {"cpu": "AMD EPYC 9B14", "cores": 2, "torch": "2.13.0+cpu", "torch_build": "cpu", "gpu": None}
MACHINE_B = {**MACHINE_A, "cpu": "Intel Xeon 8480", "cores": 8}


def latency(median, runs=12):
    return {"median": median, "iqr": 0.1, "ci95_low": median * 0.98, "ci95_high": median * 1.02, "runs": runs,
            "samples": [median] * runs, "converged": True, "budget_exhausted": False}


def variant(name, amount, macs, params, quality=None, median=None, environment=MACHINE_A, **extra):
    record = make_record(model="minilm-l6", modality="text", family="bert", weights="pretrained",
                         input={"kind": "text", "tokens": 128, "batch": 1}, macs=macs, macs_effective=macs,
                         params=params, params_nonzero=params, environment=environment,
                         compression=[{"name": name, "amount": amount, "options": {}}] if name else None,
                         macs_by_component={"attention": macs // 3, "ffn": macs - macs // 3}, **extra)
    if median is None:
        del record["latency_ms"]
    else:
        record["latency_ms"] = latency(median)
    if quality is not None:
        record["quality"] = {"task": "rt-polarity", "task_version": 1, "metric": "accuracy", "split": "test",
                             "value": quality, "protocol": "finetune"}
    return record


def landscape_records():
    dense = variant(None, None, 1000, 100, quality=0.83, median=10.0)
    return [dense,
            variant("head_pruning", 0.25, 900, 95, quality=0.82, median=9.5, speedup=10 / 9.5,
                    predicted_speedup=1000 / 900),
            variant("head_pruning", 0.5, 800, 90, quality=0.79, median=9.6, speedup=10 / 9.6, predicted_speedup=1.25),
            variant("layer_drop", 0.5, 500, 70, quality=0.60, median=5.0, speedup=2.0, predicted_speedup=2.0),
            variant("ffn_pruning", 0.5, 800, 80, quality=0.78, median=8.0, speedup=1.25, predicted_speedup=1.25),
            variant("weight_pruning", 0.5, 1000, 100, quality=0.83, median=10.0, speedup=1.0, predicted_speedup=1.0),
            variant("low_rank", 0.5, 700, 60, quality=None, median=7.0)]  # no quality: off the quality fronts


def test_pareto_mask_on_hand_made_points():
    points = [(0.9, 10), (0.8, 5), (0.85, 12), (0.8, 5), (0.7, 6), (0.95, 20)]
    # (0.85, 12) is beaten by (0.9, 10); (0.7, 6) by (0.8, 5); the two (0.8, 5) tie and both stay
    assert pareto_mask(points, ["max", "min"]) == [True, True, False, True, False, True]
    assert pareto_mask([(1, 1)], ["min", "min"]) == [True]
    assert pareto_mask([(1, 2), (2, 1), (2, 2)], ["min", "min"]) == [True, True, False]


def independent_front(rows: list[dict], objectives: list[tuple[str, str]]) -> set[int]:
    """Brute force over all pairs, written without pareto_mask: i is on the front unless some j beats it."""
    def at_least_as_good(a, b, key, sense):
        return a[key] >= b[key] if sense == "max" else a[key] <= b[key]

    front = set()
    for i, a in enumerate(rows):
        beaten = False
        for j, b in enumerate(rows):
            if i != j and all(at_least_as_good(b, a, k, s) for k, s in objectives) and any(
                    b[k] != a[k] for k, _ in objectives):
                beaten = True
        if not beaten:
            front.add(i)
    return front


def test_the_two_objective_front_is_the_brute_force_one_on_points_with_ties():
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 200):
        for senses in (["max", "min"], ["min", "min"], ["max", "max"]):
            points = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(size)]  # many ties, many repeats
            rows = [{"a": a, "b": b} for a, b in points]
            expected = independent_front(rows, list(zip(("a", "b"), senses, strict=True)))
            assert [i for i, kept in enumerate(pareto_mask(points, senses)) if kept] == sorted(expected)


def test_a_configuration_measured_in_several_runs_is_one_row_its_latest(tmp_path):
    first = landscape_records()
    again = [dict(r, run_id="later", timestamp="2030-01-01T00:00:00+00:00") for r in first[:3]]
    again[1] = dict(again[1], speedup=1.5, latency_ms=latency(9.0))  # head_pruning=0.25, measured again
    frame = landscape_frame(first + again)
    assert len(frame) == len(first) and frame["measurements"].tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert frame.loc[1, "run_id"] == "later" and frame.loc[1, "speedup"] == 1.5 and frame.loc[2, "speedup"] == 10 / 9.6
    results = tmp_path / "r.jsonl"
    append_records(results, first + again)
    landscape = load_landscape([results])  # superseded records are dropped as they are read
    assert landscape.read == 10 and len(landscape.records) == 7 and sorted(landscape.measurements.values()) == [
        1, 1, 1, 1, 2, 2, 2]
    assert [r["run_id"] for r in landscape.records].count("later") == 3
    assert landscape_frame(landscape)[["run_id", "speedup", "measurements"]].equals(
        frame[["run_id", "speedup", "measurements"]])
    write_report([results], tmp_path / "report", formats=["md"])
    text = (tmp_path / "report" / "landscape.md").read_text()
    assert ("10 records of 7 configurations (each shown by its latest measurement; 3 were measured more than "
            "once)") in text
    assert "| measurements |" in text


def test_a_file_given_twice_or_a_record_appended_twice_is_counted_once_with_a_warning(tmp_path, capsys):
    results, twice = tmp_path / "r.jsonl", tmp_path / "twice.jsonl"
    append_records(results, landscape_records())
    append_records(twice, landscape_records() + landscape_records()[2:4])  # two lines appended again
    assert main(["report", str(results), "--out", str(tmp_path / "once"), "--format", "csv", "md"]) == 0
    assert capsys.readouterr().err == ""
    for name, given, again in (("same-file", [results, results], 7), ("appended", [twice], 2)):
        assert main(["report", *map(str, given), "--out", str(tmp_path / name), "--format", "csv", "md"]) == 0
        err = capsys.readouterr().err
        assert err == (f"compbench: warning: {again} records were read again (the same run, job and configuration: "
                       "a file given twice, or a line appended twice) and counted once\n")
        assert (tmp_path / name / "landscape.csv").read_text() == (tmp_path / "once" / "landscape.csv").read_text()
        assert f"7 records ({again} read again counted once) from" in (tmp_path / name / "landscape.md").read_text()
    landscape = load_landscape([results, results])
    assert (landscape.read, landscape.repeated, len(landscape.records)) == (7, 7, 7)


def test_csv_cells_that_hold_lists_or_mappings_are_json(tmp_path):
    import csv
    import io

    from compbench.cli.output import render

    records = landscape_records()
    rows = list(csv.DictReader(io.StringIO(render(records, "csv"))))
    for record, row in zip(records, rows, strict=True):
        assert (json.loads(row["compression"]) if row["compression"] else None) == record["compression"]  # dense
        assert json.loads(row["warnings"]) == record["warnings"]
        assert json.loads(row["latency_ms.samples"]) == record["latency_ms"]["samples"]


def test_a_timing_that_did_not_converge_is_marked_in_the_tables_and_hollow_in_the_charts(tmp_path):
    records = landscape_records()
    records[3]["latency_ms"] = dict(records[3]["latency_ms"], converged=False)  # layer_drop=0.5
    results = tmp_path / "r.jsonl"
    append_records(results, records)
    write_report([results], tmp_path / "report", formats=["md", "html"])
    markdown = (tmp_path / "report" / "landscape.md").read_text()
    marked = [line for line in markdown.splitlines() if line.startswith("|") and " *" in line]
    assert len(marked) == 1 and "layer_drop=0.5" in marked[0]
    assert marked[0].count(" * |") == 2  # its median and its speedup
    assert markdown.count("* the timing did not reach its target interval") == 1
    assert "* the timing did not reach its target interval" in (tmp_path / "report" / "landscape.html").read_text()
    frame = landscape_frame(records)
    for plot in (plot_speedup_vs_predicted, plot_latency_vs_params):
        figure = plot(frame)
        hollow = [line for axis in figure.axes for line in axis.lines
                  if line.get_markerfacecolor() == "none" and len(line.get_xdata())]
        assert [len(line.get_xdata()) for line in hollow] == [1]  # layer_drop's one point
        assert "hollow: timing not converged" in " ".join(figure.get_suptitle().split())
    records[3]["latency_ms"]["converged"] = True
    clean = landscape_frame(records)
    assert "hollow" not in plot_speedup_vs_predicted(clean).get_suptitle()


def clear_labels(figure, axis) -> list[str]:
    """The texts of ``axis``'s point labels, once it is checked that no two overlap and none covers a marker."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Annotation

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    labels = [text for text in axis.texts if isinstance(text, Annotation)]
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not [(a.get_text(), b.get_text()) for i, (a, box) in enumerate(zip(labels, boxes, strict=True))
                for b, other in zip(labels[i + 1:], boxes[i + 1:], strict=True) if box.overlaps(other)]
    points = [(line, xy) for line in axis.lines if line.get_marker() not in (None, "None", "", " ")
              for xy in line.get_transform().transform(line.get_xydata())]
    assert not [label.get_text() for label, box in zip(labels, boxes, strict=True)
                for line, (x, y) in points if box.contains(x, y)]  # no marker's centre under a label
    return [label.get_text() for label in labels]


def test_no_point_label_is_drawn_over_another_label_or_a_point_on_a_crowded_chart():
    """Twelve variants of one compressor whose points nearly coincide, and a dense one beside them; points drawn
    at one place share one label."""
    records = [variant(None, None, 1000, 100, quality=0.80, median=10.0)] + [
        variant("head_pruning", round(0.05 * i, 2), 700 + i, 90, quality=0.78 + 0.001 * i, median=7.0 + 0.01 * i,
                speedup=10 / (7.0 + 0.01 * i), predicted_speedup=1000 / (700 + i)) for i in range(1, 13)]
    frame = landscape_frame(records)
    for plot, with_dense in ((plot_quality_vs_macs, True), (plot_speedup_vs_predicted, False),
                             (plot_latency_vs_params, True)):
        figure = plot(frame)
        [axis] = [axis for axis in figure.axes if axis.get_visible()]
        expected = ["dense"] * with_dense + [f"{round(0.05 * i, 2):g}" for i in range(1, 13)]
        # each variant named once: alone, or in the one label of the points drawn at its place
        assert sorted(name for label in clear_labels(figure, axis) for name in label.split(", ")) == sorted(expected)


def test_a_pipeline_studys_points_at_one_place_share_one_label_and_no_label_covers_another():
    """The committed rt-polarity study: its six pipelines have the same params (early exit adds its exits to
    each), so the params panel has six points at one place, labelled once, ``1-6``."""
    from compbench.report.pipelines import plot_estimate_vs_measured, study_tables

    repo = Path(__file__).resolve().parents[1]
    [study] = study_tables(load_landscape([repo / "results" / "pipelines" / "rt-polarity-minilm.jsonl"]).records)
    figure = plot_estimate_vs_measured(study)
    shown = {axis.get_title(): clear_labels(figure, axis) for axis in figure.axes if axis.axison}
    assert shown["params / dense"] == ["1-6"]
    assert all(sorted(texts, key=int) == [str(n) for n in range(1, 7)] for title, texts in shown.items()
               if title != "params / dense")


def test_html_tables_left_align_words_and_right_align_figures(tmp_path):
    results = tmp_path / "r.jsonl"
    append_records(results, landscape_records())
    write_report([results], tmp_path / "report", formats=["html"])
    page = (tmp_path / "report" / "landscape.html").read_text()
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", page).group(1)
    aligned = {name: bool(kind) for kind, name in re.findall(r"<th( class='text')?>(.*?)</th>", head)}
    assert aligned["variant"] and aligned["Pareto"]  # words
    assert not any(aligned[name] for name in ("params", "GMACs", "median ms [95% CI]", "speedup [95% CI]"))
    folded = re.search(r"<details><summary>more columns: (.*?)</summary><table><thead><tr>(.*?)</tr>", page)
    assert folded.group(1).startswith("steps, params nonzero") and "<th class='text'>steps</th>" in folded.group(2)


WINDOW_PROBE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(folded => folded.open = true);
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({page: document.documentElement.scrollWidth, window: window.innerWidth});
  document.body.appendChild(probe);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs headless Chromium (Debian: apt install chromium)")
def test_the_html_report_fits_a_1400_pixel_window_with_its_folded_columns_open(tmp_path):
    """The committed default landscape and a pipeline study (the widest tables: 15 and 13 columns), opened in
    headless Chromium 1400 pixels wide: nothing to scroll sideways, with every folded table open too."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    write_report([repo / "results" / "default.jsonl", repo / "results" / "pipelines" / "rt-polarity-minilm.jsonl"],
                 tmp_path / "report", formats=["html"])
    page = (tmp_path / "report" / "landscape.html").read_text()
    assert "<details><summary>more columns: steps, params nonzero" in page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", WINDOW_PROBE + "</body>"))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
                          "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    widths = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1))
    assert widths["window"] == 1400 and widths["page"] <= 1400, widths


def test_each_speech_bar_ends_with_the_feature_encoders_share_before_and_after_compression():
    from compbench.report.charts import plot_macs_by_component

    speech = [dict(r, macs_by_component={"feature_encoder": 720, "attention": 100 - 10 * i, "ffn": 180})
              for i, r in enumerate(landscape_records())]
    speech[2]["macs_by_component"] = {"feature_encoder": 360, "attention": 100, "ffn": 180}  # conv pruned
    frame = landscape_frame(speech)
    figure = plot_macs_by_component(frame)
    texts = [t.get_text() for axis in figure.axes for t in axis.texts]
    expected = [f" {m['feature_encoder'] / sum(m.values()):.0%} feature encoder" for m in frame["macs_by_component"]]
    assert sorted(texts) == sorted(expected) and " 56% feature encoder" in texts  # 360 of 640
    text = [dict(r, macs_by_component={"embeddings": 100, "attention": 300, "ffn": 600}) for r in landscape_records()]
    assert not [t for axis in plot_macs_by_component(landscape_frame(text)).axes for t in axis.texts
                if "feature encoder" in t.get_text()]


def test_each_component_has_one_colour_in_every_report():
    """A text model (embeddings, no feature encoder) and a speech model (feature encoder, no embeddings): the
    attention bars are the same colour in both charts."""
    from matplotlib.colors import to_rgba

    from compbench.report.charts import COMPONENT_COLOURS, plot_macs_by_component

    def bar_colours(records):
        figure = plot_macs_by_component(landscape_frame(records))
        return {bars.get_label(): bars.patches[0].get_facecolor() for axis in figure.axes for bars in axis.containers}

    text = [dict(r, macs_by_component={"embeddings": 100, "attention": 300, "ffn": 600}) for r in landscape_records()]
    speech = [dict(r, macs_by_component={"feature_encoder": 500, "attention": 200, "ffn": 300})
              for r in landscape_records()]

    for records in (text, speech):
        for component, colour in bar_colours(records).items():
            assert colour == to_rgba(COMPONENT_COLOURS[component]), component
    assert set(bar_colours(text)) == {"embeddings", "attention", "ffn"}


def test_no_chart_title_is_clipped_however_long_the_model_name():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from compbench.report.charts import CHARTS

    name = "/a/long/folder/of/saved/variants/" + "fine-tuned-on-rt-polarity-" * 4 + "minilm"
    records = [dict(r, model=name, timing={"converged": True}) for r in landscape_records()]
    records[3]["latency_ms"] = dict(records[3]["latency_ms"], converged=False)  # the longest title: hollow note
    frame = landscape_frame(records)
    for chart, plot in CHARTS.items():
        figure = plot(frame)
        renderer = FigureCanvasAgg(figure).get_renderer()
        figure.draw(renderer)
        page = figure.bbox
        titles = [figure._suptitle] + [title for axis in figure.axes if axis.get_visible()
                                       for title in (axis.title, axis._left_title, axis._right_title)]
        for title in titles:
            if title is not None and title.get_text():
                box = title.get_window_extent(renderer)
                assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, (chart, title.get_text())


def record_values(record):
    """The objectives, read from the record; latency relative to the dense model of the same run."""
    relative = 1.0 if not record.get("compression") else 1 / record["speedup"] if "speedup" in record else None
    return {"quality": (record.get("quality") or {}).get("value"), "macs": record["macs"],
            "params": record["params"], "latency": relative}


def test_pareto_marks_match_an_independent_computation_from_the_records():
    records = landscape_records()
    frame = landscape_frame(records)
    with_quality = [(i, record_values(r)) for i, r in enumerate(records) if "quality" in r]
    expected = {i for n, (i, _) in enumerate(with_quality)
                if n in independent_front([v for _, v in with_quality], [("quality", "max"), ("macs", "min")])}
    # by hand: dense and weight pruning tie at the top; head pruning 0.5 beats FFN pruning 0.5 (same MACs)
    assert set(frame.index[frame["pareto_quality_macs"].fillna(False).astype(bool)]) == expected == {0, 1, 2, 3, 5}
    expected = {i for n, (i, _) in enumerate(with_quality)
                if n in independent_front([v for _, v in with_quality], [("quality", "max"), ("latency", "min")])}
    # by hand, latency relative to the dense model in the same run: head pruning 0.5 (0.96 of dense) loses to
    # head pruning 0.25 (0.95) with better quality; the rest stay
    assert set(frame.index[frame["pareto_quality_latency"].fillna(False).astype(bool)]) == expected == {0, 1, 3, 4, 5}
    assert frame.loc[6, "pareto_quality_macs"] == False  # noqa: E712  (no quality: never on a quality front)
    assert frame["pareto_macs_params"].isna().all()  # a group with quality gets the quality fronts
    assert frame.loc[3, "pareto"] == "quality/MACs, quality/latency"


@QUICK_SWEEP_GROUP
def test_pareto_marks_of_a_real_sweep_match_an_independent_computation(quick_results):
    results = quick_results[0]
    landscape = load_landscape([results])
    frame = landscape_frame(landscape)
    for model in ("minilm-l6", "distilhubert"):
        indices = [i for i, r in enumerate(landscape.records) if r["model"] == model]
        values = [record_values(landscape.records[i]) for i in indices]
        expected = {indices[n] for n in independent_front(values, [("macs", "min"), ("params", "min")])}
        marked = set(frame.index[frame["pareto_macs_params"].fillna(False).astype(bool)]) & set(indices)
        assert marked == expected and expected  # cost only: MACs against params
    assert frame["pareto_quality_macs"].isna().all()


def test_quality_change_is_against_the_dense_model_and_speedups_are_the_records_own():
    frame = landscape_frame(landscape_records())
    assert frame.loc[3, "quality_delta"] == pytest.approx(0.60 - 0.83)
    assert math.isnan(frame.loc[6, "quality_delta"])
    assert frame.loc[3, "speedup"] == 2.0 and frame.loc[3, "speedup_vs_predicted"] == 1.0
    assert math.isnan(frame.loc[0, "speedup"])  # dense: no speedup


def test_machines_are_never_mixed_in_one_table():
    records = landscape_records()
    other = [dict(r, environment=MACHINE_B) for r in records[:3]]
    frame = landscape_frame(records + other)
    tables = dict(group_tables(frame))
    assert len(tables) == 2
    titles = sorted(tables)
    assert "AMD EPYC 9B14, 2 cores" in titles[0] and "Intel Xeon 8480, 8 cores" in titles[1]
    assert len(tables[titles[0]]) == 7 and len(tables[titles[1]]) == 3
    for table in tables.values():
        assert table.loc[0, "variant"] == "dense" and "speedup [95% CI]" in table.columns


def test_write_report_writes_tables_four_charts_and_a_self_contained_page(tmp_path):
    results = tmp_path / "r.jsonl"
    append_records(results, landscape_records())
    record_failure(results, {"sweep": "s", "job": "deadbeefdeadbeef", "label": "hubert-base 10s low_rank 0.5",
                             "config": {}, "error_type": "RuntimeError", "error": "out of memory",
                             "timestamp": "2026-11-21T00:00:00+00:00"})
    files = write_report([results], tmp_path / "report")
    names = sorted(p.name for p in files)
    charts = ["latency_vs_params", "macs_by_component", "quality_vs_gmacs", "speedup_measured_vs_predicted"]
    assert names == sorted([f"{c}.{s}" for c in charts for s in ("png", "svg")] +
                           ["landscape.csv", "landscape.html", "landscape.md"])
    for chart in charts:
        assert (tmp_path / "report" / f"{chart}.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "report" / "landscape.html").read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=["']?https?://""", page)  # nothing to fetch: opens offline as it is
    assert "out of memory" in page and "★" in page
    markdown = (tmp_path / "report" / "landscape.md").read_text()
    assert "| dense |" in markdown and "![Quality against GMACs](quality_vs_gmacs.png)" in markdown
    assert "## Failed jobs" in markdown
    csv_header = (tmp_path / "report" / "landscape.csv").read_text().splitlines()[0].split(",")
    assert {"pareto_quality_macs", "speedup_ci_low", "macs_attention", "quality_delta"} <= set(csv_header)
    # the report is rebuilt in place
    assert sorted(p.name for p in write_report([results], tmp_path / "report", ["csv"])) == sorted(
        [f"{c}.{s}" for c in charts for s in ("png", "svg")] + ["landscape.csv"])


def test_charts_without_the_measurement_say_so():
    records = [variant(None, None, 1000, 100), variant("layer_drop", 0.5, 500, 60, predicted_speedup=2.0)]
    figure = plot_quality_vs_macs(landscape_frame(records))
    texts = [t.get_text() for axis in figure.axes for t in axis.texts]
    assert any("no task quality" in t for t in texts)


def test_failures_that_later_succeeded_are_not_reported(tmp_path):
    results = tmp_path / "r.jsonl"
    append_records(results, [variant(None, None, 1000, 100, job="aaaa")])
    record_failure(results, {"sweep": "s", "job": "aaaa", "label": "x", "config": {}, "error_type": "E",
                             "error": "e", "timestamp": "t"})
    assert load_landscape([results]).failures == []


def test_report_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and not (tmp_path / "out").exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["report", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert "no records" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(CorruptResultsError):
        load_landscape([tmp_path / "missing.jsonl"])
    with pytest.raises(InvalidInputError, match="--format"):
        write_report([empty], tmp_path / "out", ["pdf"])


def test_report_works_on_records_written_before_this_version():
    path = REPO / "results" / "hubert-base-compression-cpu.jsonl"  # written by compbench before sweeps existed
    frame = landscape_frame(load_landscape([path]))
    assert len(frame) == 7 and frame["speedup_ci_low"].isna().all()  # no interval was recorded then
    assert frame["pareto_latency_params"].notna().all()
    [(title, table)] = group_tables(frame)
    assert "hubert-base (random weights) · 10 s" in title and table.loc[0, "variant"] == "dense"
    assert table.loc[1, "speedup [95% CI]"] == f"{json.loads(path.read_text().splitlines()[1])['speedup']:.2f}"


def test_group_tables_are_what_the_markdown_shows(tmp_path):
    results = tmp_path / "r.jsonl"
    append_records(results, landscape_records())
    write_report([results], tmp_path / "report", ["md"])
    markdown = (tmp_path / "report" / "landscape.md").read_text()
    [(title, table)] = group_tables(landscape_frame(load_landscape([results])))
    assert f"## {title}" in markdown
    for row in table.itertuples(index=False):
        assert " | ".join(str(v) for v in row) in markdown
    assert list(itertools.islice(table["variant"], 2)) == ["dense", "head_pruning=0.25"]


def test_latency_across_runs_is_compared_through_same_run_ratios():
    # the dense job ran while the machine was slow; the variant's own run had a faster dense model
    dense = variant(None, None, 1000, 100, median=37.5)
    int8 = variant("int8_dynamic", None, 1000, 100, median=30.1, speedup=29.2 / 30.1, predicted_speedup=1.0,
                   speedup_ci95=[0.95, 0.99], baseline_latency_ms={"median": 29.2})
    frame = landscape_frame([dense, int8])
    assert frame.loc[1, "relative_latency"] == pytest.approx(30.1 / 29.2)  # slower than its dense model
    assert frame.loc[1, "relative_latency_low"] == pytest.approx(1 / 0.99)
    assert list(frame["pareto_latency_params"]) == [True, False]  # not ahead of dense, whatever 30.1 < 37.5 says
    [(_, table)] = group_tables(frame)
    assert table.loc[1, "dense ms, same run"] == "29.20" and table.loc[1, "median ms [95% CI]"].startswith("30.10")


def test_variants_that_differ_only_in_options_are_told_apart():
    records = [variant(None, None, 100, 10, quality=0.8)]
    for options in ({"importance": "trajectory"}, {"importance": "fisher", "mask_tuning": True}):
        record = variant("budget_pruning", 0.4, 60, 8, quality=0.79)
        record["compression"][0]["options"] = {**options, "batches": 16}  # 16 is the default: not shown
        records.append(record)
    frame = landscape_frame(records)
    assert list(frame["variant"]) == ["dense", "budget_pruning=0.4",
                                      'budget_pruning=0.4 (importance: "fisher"; mask_tuning: true)']
    assert list(frame["compressor"]) == ["dense", "budget_pruning",  # what the charts colour by
                                         'budget_pruning (importance: "fisher"; mask_tuning: true)']


def test_saved_variants_and_their_fine_tunes_sit_in_their_base_models_group():
    """Records of a saved variant measured on its own, and of a fine-tune of one, join the group of the model the
    variant was compressed from (its dense row is theirs to compare with), labelled by their steps and the fine-tune;
    a fine-tune of a dense model stays a model of its own."""
    trained = "compbench finetune: distilhubert from random init on fsdd-digits v2"
    base = {"model": "dh/", "checkpoint": "dh/", "weights": "trained-here:fsdd-digits", "model_source": trained}
    def trained_here(name, amount, macs, quality, model, **extra):
        record = variant(name, amount, macs, 10, quality=quality)
        record.update(model=model, weights="trained-here:fsdd-digits", **extra)
        return record

    dense = trained_here(None, None, 100, 0.95, "dh/", model_source=trained)
    saved = trained_here("budget_pruning", 0.5, 50, 0.70, "dh-bp/", model_source=trained, base_model=base)
    tuned = trained_here("budget_pruning", 0.5, 50, 0.94, "dh-bp-ft/", base_model=base,
                         model_source="compbench finetune: dh-bp/ (trained-here:fsdd-digits) on fsdd-digits v2")
    other = trained_here(None, None, 100, 0.90, "dh2/",
                         model_source="compbench finetune: dh/ (trained-here:fsdd-digits) on fsdd-digits v2")
    frame = landscape_frame([dense, saved, tuned, other])
    # by what each is, not where it was on disk (these records predate labels: their model_source says it)
    assert list(frame["model"]) == ["distilhubert trained here on fsdd-digits"] * 3 + [
        "dh/ fine-tuned on fsdd-digits"]
    assert list(frame["variant"]) == ["dense", "budget_pruning=0.5", "budget_pruning=0.5, fine-tuned on fsdd-digits v2",
                                      "dense"]
    assert list(frame["compressor"]) == ["dense", "budget_pruning", "budget_pruning", "dense"]
    assert len(set(frame["group"][:3])) == 1 and frame["group"][3] != frame["group"][0]


def test_models_are_shown_by_their_label_their_provenance_or_their_name_and_weights_and_a_report_can_relabel():
    from compbench.report.landscape import described, provenance_phrase, relabelled

    assert described({"model": "hubert-base", "weights": "random", "model_source": "preset"}) == \
        "hubert-base (random weights)"
    assert described({"model": "/tmp/x", "weights": "pretrained", "model_source": "local",
                      "label": "minilm-l6 fine-tuned on rt-polarity"}) == "minilm-l6 fine-tuned on rt-polarity"
    assert provenance_phrase("compbench finetune: distilhubert from random init on fsdd-digits v2") == \
        "distilhubert trained here on fsdd-digits"
    assert provenance_phrase("compbench finetune: dh/ (trained-here:fsdd-digits) on fsdd-sequences v1") == \
        "dh/ fine-tuned on fsdd-sequences"
    assert provenance_phrase("local") is None and provenance_phrase(None) is None
    base = {"model": "/tmp/ft", "checkpoint": "/tmp/ft", "weights": "pretrained", "model_source": "local"}
    dense = variant(None, None, 100, 10, quality=0.8)
    dense.update(model="/tmp/ft", weights="pretrained", model_source="local")
    saved = variant("head_pruning", 0.5, 50, 10, quality=0.7)
    saved.update(model="hp/", weights="pretrained", model_source="local", base_model=base)
    names = {"/tmp/ft": "minilm-l6 fine-tuned on rt-polarity"}
    frame = landscape_frame([relabelled(dense, names), relabelled(saved, names)])
    assert list(frame["model"]) == ["minilm-l6 fine-tuned on rt-polarity"] * 2
    assert "label" not in dense and relabelled(dense, {}) is dense  # the records themselves are not changed


def test_a_model_measured_against_a_baseline_joins_its_table_with_its_quality_change_against_it():
    """The baseline's dense row is the one the other model's quality change is against (a published student's
    accuracy against its teacher's), in the baseline's group; the other model is drawn as another model."""
    teacher = variant(None, None, 300, 30, quality=0.90, median=30.0)
    teacher.update(model="bert-base", weights="random")
    student = variant(None, None, 100, 10, quality=0.84, median=10.0, baseline="bert-base", speedup=3.0,
                      predicted_speedup=3.0)
    student.update(model="minilm-l6", weights="random")
    frame = landscape_frame([teacher, student])
    assert frame["group"].nunique() == 1 and list(frame["is_dense"]) == [True, False]
    assert list(frame["variant"]) == ["dense", "minilm-l6"] and frame["compressor"][1] == "another model"
    assert frame["quality_delta"][1] == pytest.approx(0.84 - 0.90)
    assert frame["relative_latency"][1] == pytest.approx(1 / 3.0)


def test_two_models_shown_by_the_same_words_stay_two_models(tmp_path):
    """Two trainings of one recipe have the same provenance words; neither replaces the other's row."""
    trained = "compbench finetune: distilhubert from random init on fsdd-digits v2"
    first, second = (variant(None, None, 100, 10, quality=q) for q in (0.95, 0.93))
    first.update(model="/tmp/dhA", weights="trained-here:fsdd-digits", model_source=trained, run_id="a")
    second.update(model="/tmp/dhB", weights="trained-here:fsdd-digits", model_source=trained, run_id="b")
    path = tmp_path / "two.jsonl"
    append_records(path, [first, second])
    frame = landscape_frame(load_landscape([path]))
    assert list(frame["model"]) == ["distilhubert trained here on fsdd-digits (/tmp/dhA)",
                                    "distilhubert trained here on fsdd-digits (/tmp/dhB)"]
    assert list(frame["quality"]) == [0.95, 0.93] and frame["group"].nunique() == 2


def test_every_committed_results_file_still_loads_and_draws_its_landscape():
    files = sorted((REPO / "results").rglob("*.jsonl"))
    assert len(files) >= 20
    for path in files:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        frame = landscape_frame(load_landscape([path]))
        assert frame["measurements"].sum() == len(lines), path  # every record is one row's measurement
        assert group_tables(frame), path


def test_speech_tables_show_the_real_time_factor_and_records_written_before_it_get_it_from_their_latency():
    """The committed reference measurement (hubert-base at 10 s, bert-base at 128 tokens) predates ``rtf``: its
    speech rows show median latency / 10 s of audio with the interval divided the same way; text rows none. The
    default landscape, measured since, carries ``rtf`` on its speech records only."""
    from compbench.store import read_records

    repo = Path(__file__).resolve().parents[1]
    records = read_records(repo / "results" / "reference-cpu.jsonl")
    assert not any("rtf" in r for r in records)
    default = read_records(repo / "results" / "default.jsonl")
    assert all(("rtf" in r) == (r["modality"] == "speech") for r in default)
    tables = dict(group_tables(landscape_frame(load_landscape([repo / "results" / "reference-cpu.jsonl"]))))
    [speech] = [table for title, table in tables.items() if title.startswith("hubert-base")]
    dense = next(r for r in records if r["model"] == "hubert-base" and not r["compression"])
    latency = dense["latency_ms"]
    assert speech["RTF [95% CI]"][0] == (f"{latency['median'] / 1e4:.3f} [{latency['ci95_low'] / 1e4:.3f}, "
                                         f"{latency['ci95_high'] / 1e4:.3f}]")
    assert all("RTF [95% CI]" not in table for title, table in tables.items() if not title.startswith("hubert"))


def test_pareto_marks_with_an_error_rate_want_it_low_and_each_task_has_its_own_front():
    """Seeded random variants measured on a speech-recognition task (WER: lower is better) and, in the same
    group, on a classification task (accuracy): the marks of each task match a brute-force computation over
    that task's records alone, WER wanted low; the tables and the chart's axis say which way is better."""
    rng = random.Random(7)

    def measured(task, metric, value, macs, speedup, amount=None):
        steps = None if speedup is None else [{"name": "head_pruning", "amount": amount, "options": {}}]
        record = make_record(model="distilhubert", modality="speech", family="hubert", weights="random",
                             input={"kind": "audio", "seconds": 2.0, "samples": 32000, "sample_rate": 16000,
                                    "batch": 1}, macs=macs, macs_effective=macs, params=macs // 10,
                             params_nonzero=macs // 10, compression=steps, environment=MACHINE_A,
                             macs_by_component={"attention": macs // 2, "ffn": macs - macs // 2},
                             **({} if speedup is None else {"speedup": speedup}))
        record["latency_ms"] = latency(100.0 if speedup is None else 100.0 / speedup)
        record["quality"] = {"task": task, "task_version": 1, "metric": metric, "split": "test", "value": value,
                             "protocol": "finetune"}
        return record

    records = []
    for task, metric in (("fsdd-sequences", "wer"), ("fsdd-digits", "accuracy")):
        records.append(measured(task, metric, 0.3 if metric == "wer" else 0.9, 1000, None))  # dense
        records += [measured(task, metric, round(rng.uniform(0.05, 0.95), 2), rng.choice([400, 500, 600, 800]),
                             round(rng.uniform(1.0, 2.5), 2), amount=(n + 1) / 100) for n in range(25)]
    frame = landscape_frame(records)
    for task, sense in (("fsdd-sequences", "min"), ("fsdd-digits", "max")):
        indices = [i for i, r in enumerate(records) if r["quality"]["task"] == task]
        values = [record_values(records[i]) for i in indices]
        for front, cost in (("quality_macs", "macs"), ("quality_latency", "latency")):
            expected = {indices[n] for n in independent_front(values, [("quality", sense), (cost, "min")])}
            marked = set(frame.index[frame[f"pareto_{front}"].fillna(False).astype(bool)]) & set(indices)
            assert marked == expected and 0 < len(expected) < len(indices), (task, front)
    [(_, table)] = group_tables(frame[frame["task"] == "fsdd-sequences"])
    assert "fsdd-sequences wer (lower is better)" in table
    figure = plot_quality_vs_macs(frame[frame["task"] == "fsdd-sequences"])
    assert [axis.get_ylabel() for axis in figure.axes if axis.get_visible() and axis.get_ylabel()] == [
        "fsdd-sequences wer (test) (lower is better)"]
