"""Commutativity and cumulativeness of a pipeline study, from its records alone.

A study (:mod:`compbench.pipeline_study`) measured the dense model, each operator alone and orders of
several operators in one run. Per pipeline, the figures compared are its quality and its cost
relative to the dense model of the same run: MACs, params and latency (1 / speedup, the same-run
ratio), each a ratio to dense.

- Commutativity: for each set of two or more operators, the spread (max − min) over its orders of
  the quality (points) and of each cost ratio; orders the study could not run (a pruning step
  after quantization) are counted as refused.
- Cumulativeness: each pipeline's estimate from its operators measured alone, quality changes
  added (``dense + Σ (alone − dense)``) and cost ratios multiplied, against what was measured;
  the error is measured − estimate (points for quality, ratio for costs).

The CLI (``compbench pipelines``), ``compbench report`` and the notebook call these functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from compbench.errors import InvalidInputError
from compbench.metrics import direction_note
from compbench.report.charts import place_labels, wrapped_title
from compbench.report.landscape import model_words, quality_examples

COSTS = ("macs", "params", "latency")
FIGURES = ("quality",) + COSTS
FIGURE_TITLES = {"quality": "quality", "macs": "MACs / dense", "params": "params / dense",
                 "latency": "latency / dense (same run)"}


@dataclass
class StudyTables:
    """One study's tables: every pipeline measured, commutativity per operator set, cumulativeness per pipeline."""

    study: str
    title: str
    pipelines: pd.DataFrame
    commutativity: pd.DataFrame
    cumulativeness: pd.DataFrame
    skipped: list[dict]  # orders not run: {order, reason}
    operators: list[str]
    metric: str | None = None  # the quality figure's metric (accuracy, wer, ...), None without a task

    def figure_title(self, figure: str) -> str:
        """A panel's title: the quality panel names its metric and, for an error rate, that lower is better."""
        if figure != "quality" or self.metric is None:
            return FIGURE_TITLES[figure]
        return f"quality ({self.metric}){direction_note(self.metric)}"


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _basis(records: list[dict]) -> list[dict]:
    """The records the study compares: per example when the study measured so, else its first input size."""
    per_example = [r for r in records if r["input"]["kind"] == "examples"]
    if per_example:
        return per_example
    first = records[0]["input"]
    return [r for r in records if r["input"] == first]


def _pipeline_rows(records: list[dict]) -> pd.DataFrame:
    operators = records[0]["pipeline_study"]["operators"]
    dense = [r for r in records if not r["pipeline_study"]["order"]]
    if len(dense) != 1:
        raise InvalidInputError(f"study {records[0]['pipeline_study']['id']}: expected one dense record per "
                                f"basis, found {len(dense)}")
    def macs(record: dict) -> float:  # per example: the exact mean, not the record's rounded one
        return (record.get("macs_per_example") or {}).get("mean", record["macs"])

    dense_macs = macs(dense[0])
    dense_params = dense[0]["params"]
    rows = []
    for record in records:
        order = tuple(record["pipeline_study"]["order"])
        is_dense = not order
        speedup = _nan(record.get("speedup"))
        rows.append({
            "order": order, "operators": frozenset(order), "size": len(order),
            "pipeline": "dense" if is_dense else " → ".join(operators[i] for i in order),
            "quality": _nan((record.get("quality") or {}).get("value")),
            "macs": macs(record) / dense_macs, "params": record["params"] / dense_params,
            "latency": (1.0 if "latency_ms" in record else math.nan) if is_dense else 1 / speedup,
            "gmacs": macs(record) / 1e9,
        })
    return pd.DataFrame(rows)


def commutativity(pipelines: pd.DataFrame, operators: list[str], skipped: list[dict] = ()) -> pd.DataFrame:
    """Per operator set of two or more: the orders measured and refused, and the spread (max − min) of each figure."""
    rows = []
    for members, group in pipelines[pipelines["size"] >= 2].groupby("operators", sort=False):
        refused = [s for s in skipped if frozenset(s["order"]) == members]
        row = {"operators": " + ".join(operators[i] for i in sorted(members)), "orders": len(group),
               "refused": len(refused)}
        for figure in FIGURES:
            values = group[figure].dropna()
            row[f"{figure} min"] = values.min() if len(values) else math.nan
            row[f"{figure} max"] = values.max() if len(values) else math.nan
            row[f"{figure} spread"] = row[f"{figure} max"] - row[f"{figure} min"]
        rows.append(row)
    return pd.DataFrame(rows)


def cumulativeness(pipelines: pd.DataFrame) -> pd.DataFrame:
    """Per pipeline of two or more operators: the estimate from its operators alone, the measured value, the error."""
    dense = pipelines[pipelines["size"] == 0].iloc[0]
    alone = {row.order[0]: row for row in pipelines[pipelines["size"] == 1].itertuples()}
    rows = []
    for row in pipelines[pipelines["size"] >= 2].itertuples():
        entry = {"pipeline": row.pipeline, "order": row.order}
        estimate = dense["quality"] + sum(alone[i].quality - dense["quality"] for i in row.order)
        entry.update({"quality estimate": estimate, "quality measured": row.quality,
                      "quality error": row.quality - estimate})
        for cost in COSTS:
            estimate = math.prod(getattr(alone[i], cost) for i in row.order)
            measured = getattr(row, cost)
            entry.update({f"{cost} estimate": estimate, f"{cost} measured": measured,
                          f"{cost} error": measured - estimate})
        rows.append(entry)
    return pd.DataFrame(rows)


def study_tables(records: list[dict]) -> list[StudyTables]:
    """The tables of every pipeline study in ``records`` (records without a study tag are ignored)."""
    by_study: dict[str, list[dict]] = {}
    for record in records:
        if "pipeline_study" in record:
            by_study.setdefault(record["pipeline_study"]["id"], []).append(record)
    tables = []
    for study, members in by_study.items():
        basis = _basis(members)
        tag, first = basis[0]["pipeline_study"], basis[0]
        pipelines = _pipeline_rows(basis)
        seen = quality_examples(first.get("quality") or {})
        title = (f"{model_words(first) or first['model']}, evaluated on "
                 f"{(first.get('quality') or {}).get('task', 'no task')}"
                 f"{f' ({seen})' if seen else ''}: {' × '.join(tag['operators'])} ({tag['basis']}, study {study})")
        skipped = tag.get("skipped", [])
        tables.append(StudyTables(study, title, pipelines, commutativity(pipelines, tag["operators"], skipped),
                                  cumulativeness(pipelines), skipped, tag["operators"],
                                  (first.get("quality") or {}).get("metric")))
    return tables


NOT_MEASURED = {"quality": "no task", "latency": "not timed"}  # why a figure of every pipeline can be missing


def summary_line(tables: StudyTables) -> str:
    """The study's two claims as numbers: the largest spread over orders, the mean and largest estimate error;
    a figure that cannot be computed says "not measured" and why, never nan."""
    parts = []
    for figure in FIGURES:
        scale, unit = (100, " points") if figure == "quality" else (1, "")
        if tables.pipelines[figure].isna().all():
            parts.append(f"{figure}: not measured ({NOT_MEASURED.get(figure, 'no value')})")
            continue
        spreads = tables.commutativity[f"{figure} spread"].dropna() if len(tables.commutativity) else pd.Series([])
        errors = (tables.cumulativeness[f"{figure} error"].abs().dropna() if len(tables.cumulativeness)
                  else pd.Series([]))
        spread = (f"order spread ≤ {spreads.max() * scale:.3g}{unit}" if len(spreads)
                  else "order spread not measured (no operator set run in two orders)")
        error = (f"estimate error mean {errors.mean() * scale:.3g}{unit} (max {errors.max() * scale:.3g})"
                 if len(errors) else "estimate error not measured (no pipeline of two operators or more)")
        parts.append(f"{figure}: {spread}, {error}")
    refused = f"; {len(tables.skipped)} orders refused ({tables.skipped[0]['reason']})" if tables.skipped else ""
    return "; ".join(parts) + refused


def _fmt(value: float, digits: int = 4) -> str:
    return "" if value != value else f"{value:.{digits}f}"


# the columns of display_tables a reader needs least (their names end so): the ranges behind each spread, the
# estimate and the measured value behind each error; the terminal leaves them out first, the HTML page folds them
RANGES_AND_ESTIMATES = ("min–max", "est.", "meas.")


def display_tables(tables: StudyTables) -> list[tuple[str, pd.DataFrame]]:
    """The three tables formatted for Markdown, HTML and the terminal."""
    pipelines = pd.DataFrame({
        "pipeline": tables.pipelines["pipeline"], "quality": tables.pipelines["quality"].map(_fmt),
        "GMACs": tables.pipelines["gmacs"].map(lambda v: f"{v:.3f}"),
        "MACs / dense": tables.pipelines["macs"].map(_fmt),
        "params / dense": tables.pipelines["params"].map(_fmt),
        "latency / dense": tables.pipelines["latency"].map(_fmt)})
    commutes = pd.DataFrame({"operators": tables.commutativity.get("operators", pd.Series(dtype=str)),
                             "orders run": tables.commutativity.get("orders", pd.Series(dtype=int)),
                             "refused": tables.commutativity.get("refused", pd.Series(dtype=int))})
    for figure in FIGURES:
        if f"{figure} spread" in tables.commutativity:
            commutes[f"{figure} min–max"] = [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(
                tables.commutativity[f"{figure} min"], tables.commutativity[f"{figure} max"], strict=True)]
            commutes[f"{figure} spread"] = tables.commutativity[f"{figure} spread"].map(_fmt)
    cumulates = pd.DataFrame({"pipeline": tables.cumulativeness.get("pipeline", pd.Series(dtype=str))})
    for figure in FIGURES:
        if f"{figure} error" in tables.cumulativeness:
            cumulates[f"{figure} est."] = tables.cumulativeness[f"{figure} estimate"].map(_fmt)
            cumulates[f"{figure} meas."] = tables.cumulativeness[f"{figure} measured"].map(_fmt)
            cumulates[f"{figure} error"] = tables.cumulativeness[f"{figure} error"].map(lambda v: _fmt(v) if v != v
                                                                                        else f"{v:+.4f}")
    shown = [("pipelines", pipelines), ("commutativity: spread over orders", commutes),
             ("cumulativeness: estimate from the operators alone against measured", cumulates)]
    if tables.skipped:
        operators = tables.operators
        shown.append(("orders not run", pd.DataFrame({
            "pipeline": [" → ".join(operators[i] for i in s["order"]) for s in tables.skipped],
            "reason": [s["reason"] for s in tables.skipped]})))
    return shown


def plot_estimate_vs_measured(tables: StudyTables) -> Figure:
    """Four panels (quality, MACs, params, latency): each pipeline's estimate against its measured value."""
    from matplotlib.figure import Figure  # imported where a chart is drawn: the CLI starts without it

    figure = Figure(figsize=(13, 3.8), layout="constrained")
    axes = figure.subplots(1, len(FIGURES))
    data = tables.cumulativeness
    labels = {}
    for axis, name in zip(axes, FIGURES, strict=True):
        if not len(data) or data[f"{name} measured"].isna().all():
            axis.set_axis_off()
            axis.set_title(f"{tables.figure_title(name)}: not measured", fontsize=9)
            continue
        estimate, measured = data[f"{name} estimate"], data[f"{name} measured"]
        low = min(estimate.min(), measured.min())
        high = max(estimate.max(), measured.max())
        pad = (high - low) * 0.1 or abs(high) * 0.02 or 0.01
        axis.plot([low - pad, high + pad], [low - pad, high + pad], color="0.6", linestyle="--", linewidth=1)
        labels[axis] = []
        for index, order in enumerate(data["order"]):
            point = (estimate.iloc[index], measured.iloc[index])
            axis.plot(*point, linestyle="none", marker="o", color=f"C{len(order) - 2}", markersize=6)
            labels[axis].append((*point, str(index + 1)))
        axis.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), xlabel="estimate",
                 ylabel="measured", title=tables.figure_title(name))
        axis.title.set_fontsize(9)
        axis.grid(alpha=0.3)
    figure.suptitle(wrapped_title(tables.title, figure.get_figwidth(), 9) + "\n" + wrapped_title(
        "estimate from the operators alone against measured (dashed: exact; numbers: rows of the cumulativeness "
        "table)", figure.get_figwidth(), 9), fontsize=9)
    place_labels(figure, labels)  # once the titles are set: the layout they take decides each panel's room
    return figure
