"""The landscape's four charts, drawn from :func:`compbench.report.landscape.landscape_frame`.

Each function returns a matplotlib Figure with one panel per group (model, input size and,
where timed, machine) and draws nothing else, so the report, the notebook and a user's own
script show the same thing. Every compressor keeps one colour and marker across all charts;
the dense model is a black star. Figures are built without pyplot (no GUI backend needed).
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from compbench.metrics import direction_note
from compbench.report.landscape import ANOTHER_MODEL, NOT_TIMED, unconverged

COMPONENT_ORDER = ("feature_encoder", "embeddings", "attention", "ffn", "other", "head")
# one colour per component in every chart of every report, whichever components a report's models have
COMPONENT_COLOURS = {component: f"C{index}" for index, component in enumerate(COMPONENT_ORDER)}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
_DENSE_STYLE = {"color": "black", "marker": "*"}
_ANOTHER_MODEL_STYLE = {"color": "dimgray", "marker": "D"}  # a published model beside the baseline's variants


def compressor_styles(frame: pd.DataFrame) -> dict[str, dict]:
    """A colour and a marker per compressor (in order of appearance), black star for dense, grey diamonds for the
    other models measured against a baseline (each labelled by its name)."""
    colours = [f"C{i}" for i in range(10)]
    names = [c for c in dict.fromkeys(frame["compressor"]) if c not in ("dense", ANOTHER_MODEL)]
    styles = {name: {"color": colours[i % 10], "marker": _MARKERS[i % len(_MARKERS)]} for i, name in enumerate(names)}
    styles["dense"] = _DENSE_STYLE
    styles[ANOTHER_MODEL] = _ANOTHER_MODEL_STYLE
    return styles


TITLE_SIZE = 12  # points: the figure's title
TITLE_CHARACTER = 0.6  # a character's mean width in its font size, with margin


def wrapped_title(text: str, width_inches: float, size: float = TITLE_SIZE) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``size`` points, so no title is clipped."""
    return "\n".join(textwrap.wrap(text, max(20, int(width_inches * 72 / (size * TITLE_CHARACTER))))) or text


def _panel_title(axis, rows: pd.DataFrame) -> None:
    """``model · input`` and, below it in small type, the machine (when timed)."""
    first = rows.iloc[0]
    width = axis.figure.get_figwidth() / axis.get_subplotspec().get_gridspec().ncols  # the panel's share
    axis.set_title(wrapped_title(f"{first['model']} · {first['input']}", width * 0.7, 10), fontsize=10, loc="left")
    if first["machine"] != NOT_TIMED:
        axis.set_title(textwrap.shorten(first["machine"], 70, placeholder="…"), fontsize=7, loc="right",
                       color="0.35", y=1.06)


def _panels(groups: list[str], width: float = 7.0, height: float = 4.6) -> tuple[Figure, list]:
    from matplotlib.figure import Figure  # imported where a chart is drawn: the CLI starts without it

    columns = 1 if len(groups) <= 1 else 2
    rows = max(1, math.ceil(len(groups) / columns))
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for extra in axes[len(groups):]:
        extra.set_visible(False)
    return figure, axes[:max(1, len(groups))]


def _empty(title: str, message: str) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 2.5), layout="constrained")
    axis = figure.subplots()
    axis.set_axis_off()
    axis.set_title(title)
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axis.transAxes)
    return figure


def _point_label(row) -> str:
    if row.is_dense:
        return "dense"
    if row.compressor == "pipeline":
        return row.variant.replace(",", " + ")
    if row.compressor == ANOTHER_MODEL:
        return row.variant  # its name
    return "" if row.amount != row.amount else f"{row.amount:g}"


def _scatter(axis, group: pd.DataFrame, x: str, y: str, styles: dict, xerr=None, yerr=None,
             timed: bool = False) -> None:
    """Each compressor's points in its style; on a ``timed`` axis, a point whose timing did not converge hollow."""
    for compressor, points in group.groupby("compressor", sort=False):
        style = styles[compressor]
        size = 14 if compressor == "dense" else 7
        hollow = unconverged(points) if timed else pd.Series(False, index=points.index)
        for part, face in ((points[~hollow], {}), (points[hollow], {"markerfacecolor": "none"})):
            if len(part):
                axis.errorbar(part[x], part[y], xerr=None if xerr is None else xerr(part),
                              yerr=None if yerr is None else yerr(part), linestyle="none", markersize=size,
                              elinewidth=0.8, capsize=2, label=compressor, **style, **face)
    return [(getattr(row, x), getattr(row, y), _point_label(row)) for row in group.itertuples() if _point_label(row)]


# where a point's label may go, in points from the point, nearest first: beside it, then further out
LABEL_OFFSETS = tuple((dx * r, dy * r) for r in (5, 11, 18, 27, 38)
                      for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1.3), (0, -1.3), (1.3, 0), (-1.3, 0)))
LABEL_SIZE = 7


def _marker_boxes(axis, renderer) -> list:
    """The display box of every marker drawn on ``axis`` (points, not lines)."""
    from matplotlib.transforms import Bbox

    boxes = []
    for line in axis.lines:
        if line.get_marker() in (None, "None", "", " ") or not line.get_visible():
            continue
        radius = line.get_markersize() * axis.figure.dpi / 72 / 2
        for px, py in line.get_transform().transform(line.get_xydata()):
            if math.isfinite(px) and math.isfinite(py):
                boxes.append(Bbox.from_extents(px - radius, py - radius, px + radius, py + radius))
    return boxes


SAME_PLACE_PX = 3.0  # points whose markers sit within this many pixels of each other share one label


def _one_label_per_place(axis, items: list[tuple]) -> list[tuple]:
    """Points drawn at one place (within :data:`SAME_PLACE_PX`) share one label: their texts joined (``fp16,
    bf16``), a run of row numbers as a range (``1-6``), at the first one's point."""
    places: list[tuple] = []  # (pixel x, pixel y, x, y, texts)
    for x, y, text in items:
        px, py = axis.transData.transform((x, y))
        near = next((place for place in places if math.hypot(place[0] - px, place[1] - py) <= SAME_PLACE_PX), None)
        if near is None:
            places.append((px, py, x, y, [text]))
        else:
            near[4].append(text)
    return [(x, y, _joined(texts)) for _, _, x, y, texts in places]


def _joined(texts: list[str]) -> str:
    if len(texts) < 3 or not all(text.isdigit() for text in texts):
        return ", ".join(texts)
    numbers, runs = sorted(int(text) for text in texts), []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)


def place_labels(figure: Figure, labels: dict) -> None:
    """Label every point (``labels``: axis -> [(x, y, text)]) where its text overlaps no other label and no
    marker, at the nearest free place of :data:`LABEL_OFFSETS` (the least crowded one where none is free);
    points drawn at one place get one label."""
    if not any(labels.values()):
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw_without_rendering()  # the layout settles each panel's place and limits first
    for axis, items in labels.items():
        taken, inside = _marker_boxes(axis, renderer), axis.get_window_extent(renderer)
        for x, y, text in _one_label_per_place(axis, items):
            best = None
            for dx, dy in LABEL_OFFSETS:
                label = axis.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=LABEL_SIZE,
                                      ha="left" if dx > 0 else "right" if dx < 0 else "center",
                                      va="bottom" if dy > 0 else "top" if dy < 0 else "center")
                label.set_in_layout(False)
                box = label.get_window_extent(renderer)
                clashes = sum(box.overlaps(other) for other in taken) + (not inside.contains(box.x0, box.y0)) + (
                    not inside.contains(box.x1, box.y1))
                if best is None or clashes < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (clashes, label, box)
                else:
                    label.remove()
                if clashes == 0:
                    break
            taken.append(best[2])


def _hollow_note(rows: pd.DataFrame) -> str:
    """What a chart's title adds where some of its points are hollow (their timing did not converge)."""
    return "; hollow: timing not converged" if unconverged(rows).any() else ""


def _legend(figure: Figure, styles: dict, frame: pd.DataFrame) -> None:
    from matplotlib.lines import Line2D

    present = [c for c in styles if c in set(frame["compressor"])]
    handles = [Line2D([], [], linestyle="none", markersize=9 if c != "dense" else 13, label=c, **styles[c])
               for c in present]
    longest = max((len(h.get_label()) for h in handles), default=0)
    columns = min(len(handles), 5 if longest <= 24 else 2 if longest <= 60 else 1)  # long labels: fewer per row
    figure.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=8)


def _macs_axis(group: pd.DataFrame) -> str:
    """Per example (input-dependent cost), MACs are the mean over the examples."""
    return "mean GMACs per example" if group["per_example"].all() else "GMACs per forward"


def _interval_error(value: str, low: str, high: str):
    def error(points: pd.DataFrame):
        if points[low].isna().all():
            return None
        return [(points[value] - points[low]).fillna(0).clip(lower=0), (points[high] - points[value]).fillna(0)]
    return error


def _per_group(frame: pd.DataFrame, rows: pd.Series, title: str, missing: str, draw) -> Figure:
    """One panel per group that has ``rows``; ``draw(axis, group_rows, styles)`` fills a panel and returns the
    labels of its points, placed once every panel is drawn."""
    shown = frame[rows]
    groups = list(dict.fromkeys(shown["group"]))
    if not groups:
        return _empty(title, missing)
    styles = compressor_styles(frame)
    figure, axes = _panels(groups)
    labels = {}
    for axis, name in zip(axes, groups, strict=True):
        rows = shown[shown["group"] == name]
        labels[axis] = draw(axis, rows, styles) or []
        _panel_title(axis, rows)
        axis.grid(alpha=0.3)
    figure.suptitle(wrapped_title(title, figure.get_figwidth()), fontsize=TITLE_SIZE)
    _legend(figure, styles, shown)
    place_labels(figure, labels)
    return figure


def plot_quality_vs_macs(frame: pd.DataFrame) -> Figure:
    """Task quality against GMACs per group: the Pareto frontier drawn, the dense point marked, amounts labelled."""
    def draw(axis, group, styles):
        group = group.assign(gmacs=group["macs"] / 1e9)
        front = group[group["pareto_quality_macs"].fillna(False).astype(bool)].sort_values("gmacs")
        axis.step(front["gmacs"], front["quality"], where="post", color="0.55", linewidth=1.2, zorder=0)
        labels = _scatter(axis, group, "gmacs", "quality", styles)
        first = group.iloc[0]
        axis.set(xlabel=_macs_axis(group),
                 ylabel=f"{first['task']} {first['metric']} ({first['split']}){direction_note(first['metric'])}")
        return labels

    return _per_group(frame, frame["quality"].notna(), "quality against MACs (grey: Pareto frontier)",
                      "no task quality in these records: give the sweep a task", draw)


def plot_speedup_vs_predicted(frame: pd.DataFrame) -> Figure:
    """Measured speedup (same-run, with its 95 % interval) against the MAC-predicted speedup, with the diagonal."""
    def draw(axis, group, styles):
        top = max(group["predicted_speedup"].max(), group["speedup_ci_high"].max(skipna=True) or 0,
                  group["speedup"].max()) * 1.08
        axis.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1)
        labels = _scatter(axis, group, "predicted_speedup", "speedup", styles,
                 yerr=_interval_error("speedup", "speedup_ci_low", "speedup_ci_high"), timed=True)
        axis.set(xlim=(0, top), ylim=(0, top), xlabel="MAC-predicted speedup (dense MACs / variant MACs)",
                 ylabel="measured speedup (same run, 95% CI)")
        return labels

    return _per_group(frame, frame["speedup"].notna(),
                      "measured against MAC-predicted speedup (dashed: measured = predicted)"
                      + _hollow_note(frame[frame["speedup"].notna()]),
                      "no timed variants in these records", draw)


def plot_latency_vs_params(frame: pd.DataFrame) -> Figure:
    """Latency relative to the dense model in the same run (1 / speedup, 95 % interval) against parameters.

    Relative, because medians of different runs also carry the machine's drift between them; the
    dense model's own median is given in the axis label, every measured median in the tables."""
    def draw(axis, group, styles):
        labels = _scatter(axis, group.assign(mparams=group["params"] / 1e6), "mparams", "relative_latency", styles,
                 yerr=_interval_error("relative_latency", "relative_latency_low", "relative_latency_high"),
                 timed=True)
        dense = group.loc[group["is_dense"], "latency_ms"]
        note = f" (dense: {dense.iloc[0]:.1f} ms)" if len(dense) else ""
        axis.set(xlabel="parameters (millions)", ylabel=f"latency / dense latency, same run{note}")
        axis.set_ylim(bottom=0)
        return labels

    return _per_group(frame, frame["relative_latency"].notna(),
                      "latency (relative to the dense model, same run) against parameters"
                      + _hollow_note(frame[frame["relative_latency"].notna()]),
                      "no latency in these records (the sweep set latency: false)", draw)


def feature_encoder_share(macs_by_component: dict) -> float | None:
    """The CNN feature encoder's share of a speech model's MACs (None for a model without one)."""
    total = sum(macs_by_component.values())
    return macs_by_component["feature_encoder"] / total if "feature_encoder" in macs_by_component and total else None


def plot_macs_by_component(frame: pd.DataFrame) -> Figure:
    """For each variant, its GMACs split by component (feature encoder or embeddings, attention, FFN, other, head);
    a speech model's bar ends with the feature encoder's share of its MACs, before (dense) and after compression."""
    from matplotlib.lines import Line2D

    groups = list(dict.fromkeys(frame["group"]))
    height = max(max(2.5, 0.32 * (frame["group"] == g).sum() + 1.2) for g in groups)  # room for every bar
    figure, axes = _panels(groups, width=7.0, height=height)
    components = [c for c in COMPONENT_ORDER if any(c in d for d in frame["macs_by_component"])]
    components += sorted({c for d in frame["macs_by_component"] for c in d} - set(components))
    unknown = [c for c in components if c not in COMPONENT_COLOURS]
    colours = {**COMPONENT_COLOURS, **{c: f"C{len(COMPONENT_ORDER) + i}" for i, c in enumerate(unknown)}}
    for axis, name in zip(axes, groups, strict=True):
        group = frame[frame["group"] == name].sort_values("is_dense", ascending=False, kind="stable")
        labels = list(group["variant"])
        left = [0.0] * len(group)
        for component in components:
            values = [d.get(component, 0) / 1e9 for d in group["macs_by_component"]]
            axis.barh(range(len(group)), values, left=left, color=colours[component], label=component)
            left = [a + b for a, b in zip(left, values, strict=True)]
        shares = [feature_encoder_share(macs) for macs in group["macs_by_component"]]
        for row, (end, share) in enumerate(zip(left, shares, strict=True)):
            if share is not None:
                axis.text(end, row, f" {share:.0%} feature encoder", va="center", fontsize=6)
        axis.set_yticks(range(len(group)), labels, fontsize=7)
        axis.invert_yaxis()
        axis.set(xlabel=_macs_axis(group))
        if any(share is not None for share in shares):
            axis.margins(x=0.25)  # room for the share after the longest bar
        _panel_title(axis, group)
        axis.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=colours[c], linewidth=8, label=c) for c in components]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    figure.suptitle("MACs by component")
    return figure


CHARTS = {
    "quality_vs_gmacs": plot_quality_vs_macs,
    "speedup_measured_vs_predicted": plot_speedup_vs_predicted,
    "latency_vs_params": plot_latency_vs_params,
    "macs_by_component": plot_macs_by_component,
}
