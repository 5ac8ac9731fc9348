"""Writing the landscape to a folder: tables (Markdown, CSV), the four charts (PNG and SVG), one HTML page.

:func:`write_report` is the plain public function behind ``compbench report``. Everything is
drawn first and written into a staging folder, then moved into place, so a failure leaves the
output folder as it was. The HTML page is self-contained (charts inline as SVG, styles inline, no
scripts, nothing fetched), so it opens as it is, offline, and can be mailed around.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from compbench import __version__
from compbench.errors import InvalidInputError, ResultsWriteError
from compbench.report.charts import CHARTS
from compbench.report.landscape import (
    UNCONVERGED,
    UNCONVERGED_NOTE,
    Landscape,
    group_tables,
    landscape_frame,
    load_landscape,
)
from compbench.report.pipelines import (
    RANGES_AND_ESTIMATES,
    StudyTables,
    display_tables,
    plot_estimate_vs_measured,
    study_tables,
    summary_line,
)
from compbench.report.runtimes import runtime_comparisons
from compbench.store import frame_to_csv

FORMATS = ("md", "html", "csv")
CHART_TITLES = {
    "quality_vs_gmacs": "Quality against GMACs",
    "speedup_measured_vs_predicted": "Measured against MAC-predicted speedup",
    "latency_vs_params": "Latency against parameters",
    "macs_by_component": "MACs by component",
}
STUDY_NOTE = ("Every pipeline of a study was measured in one run beside the same dense model. Costs are ratios to "
              "that dense model (latency: 1 / the same-run speedup). Commutativity: the spread (max − min) over the "
              "orders of one operator set. Cumulativeness: the estimate from the operators alone (quality changes "
              "added, cost ratios multiplied) against the measured pipeline; error = measured − estimate.")
RUNTIMES_NOTE = ("Each variant under each runtime, timed interleaved in one run on one machine (medians in ms with "
                 "their 95 % interval); a runtime is called fastest only where its interval clears the next one's. "
                 "MACs and params are the PyTorch model's in every runtime: the same work.")
READING_NOTES = [
    "MACs are exact multiply-accumulates of one forward at the input size shown; params count every distinct "
    "parameter once; 'effective' counts only nonzero weights.",
    "Latency is the median wall-clock of a forward with the distribution-free 95 % interval of the median, as "
    "measured in the variant's own run; 'dense ms, same run' is its dense model's median in that run. Medians of "
    "different runs also carry the machine's drift between runs, so variants are ranked and charted by latency "
    "relative to their dense model in the same run (1 / speedup).",
    "Speedup is dense median / variant median from one run in which the variant and its own dense model were "
    "timed in lock-step rounds; its 95 % interval resamples those paired rounds. No ratio is formed across runs or "
    "machines, and a table never mixes machines.",
    "MAC-predicted speedup is dense MACs / variant MACs; measured / predicted near 1 means the removed work was "
    "removed from the wall-clock too.",
    "Fidelity (output CKA) is the linear CKA between the variant's last hidden states and the dense model's on up "
    "to 100 evaluation examples (1: the same representation up to rotation and scale).",
    "Pareto: ★ marks rows no other row of the same table beats in both named objectives (quality better, which is "
    "up for accuracy and down for an error rate, and MACs or relative latency down; without quality, relative "
    "latency or MACs and params down).",
]


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, table.columns)) + " |",
             "|" + "|".join("---" if c in ("variant", "steps") else "---:" for c in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _failure_rows(failures: list[dict]) -> list[tuple[str, str, str]]:
    return [(f["label"], f["job"], f["error"].splitlines()[0] if f["error"] else f["error_type"]) for f in failures]


def study_chart_name(tables: StudyTables) -> str:
    return f"pipeline_study_{tables.study}"


def records_phrase(landscape: Landscape, frame: pd.DataFrame) -> str:
    """``24 records``, or where configurations were measured more than once, how many rows they make."""
    records = landscape.read or len(landscape.records)
    again = f"; {landscape.repeated} read again counted once" if landscape.repeated else ""
    if records == len(frame):
        return f"{records} records{f' ({again[2:]})' if again else ''}"
    repeated = int((frame["measurements"] > 1).sum())
    return (f"{records} records of {len(frame)} configurations (each shown by its latest measurement; "
            f"{repeated} {'was' if repeated == 1 else 'were'} measured more than once{again})")


def _unconverged_note(table: pd.DataFrame, template: str, escape=str) -> str:
    """The footnote under a table where a median is marked :data:`UNCONVERGED`, else ``""``."""
    column = table.get("median ms [95% CI]")
    marked = column is not None and column.str.endswith(UNCONVERGED).any()
    return template.format(escape(UNCONVERGED_NOTE)) if marked else ""


def markdown_tables(frame: pd.DataFrame, level: int = 2) -> str:
    """Every group's table (:func:`~compbench.report.landscape.group_tables`) in Markdown, under a heading of
    ``level``, with the footnote where a median did not converge: what ``landscape.md`` shows, and what the
    documentation's study pages show of the committed results (generated when the site is built)."""
    return "\n".join(f"{'#' * level} {title}\n\n{_markdown_table(table)}\n" + _unconverged_note(table, "\n{}\n")
                     for title, table in group_tables(frame))


def markdown_report(landscape: Landscape, frame: pd.DataFrame, charts: Iterable[str],
                    studies: Sequence[StudyTables] = ()) -> str:
    machines = sorted({m for m in frame["machine"] if m != "not timed"})
    parts = [f"# compbench landscape\n\n{records_phrase(landscape, frame)} from {', '.join(landscape.sources)}"
             f" (compbench {__version__}, {datetime.now(UTC):%Y-%m-%d}).\n"]
    if machines:
        parts.append("Machines: " + "; ".join(machines) + ".\n")
    parts.append("\n".join(f"- {note}" for note in READING_NOTES) + "\n")
    parts.append(markdown_tables(frame))
    for comparison in runtime_comparisons(frame):
        parts.append(f"## Runtimes: {comparison.title}\n\n{RUNTIMES_NOTE}\n\n{comparison.summary}.\n\n"
                     f"{_markdown_table(comparison.table)}\n")
    parts.append("## Charts\n\n" + "\n\n".join(f"![{CHART_TITLES[name]}]({name}.png)" for name in charts) + "\n")
    for study in studies:
        parts.append(f"## Pipeline study: {study.title}\n\n{STUDY_NOTE}\n\n{summary_line(study)}.\n")
        for title, table in display_tables(study):
            parts.append(f"### {title}\n\n{_markdown_table(table)}\n")
        parts.append(f"![estimate against measured]({study_chart_name(study)}.png)\n")
    if landscape.failures:
        rows = "\n".join(f"| {label} | `{job}` | {error} |" for label, job, error in _failure_rows(landscape.failures))
        parts.append(f"## Failed jobs\n\n| job | key | error |\n|---|---|---|\n{rows}\n")
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; white-space: normal; vertical-align: bottom; }
th.text, td.text { text-align: left; white-space: normal; min-width: 8rem; }
tr.pareto td { background: #eef7ee; font-weight: 600; }
figure { margin: 1rem 0 2rem; } figure svg { max-width: 100%; height: auto; }
.notes li { margin: 0.2rem 0; } code { font-size: 0.85rem; }
"""


def _svg_inline(svg: str) -> str:
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+")  # a cell that starts with a number (a figure, an interval, a ratio)


def _text_columns(table: pd.DataFrame) -> list[bool]:
    """Per column: words (left-aligned, wrapped) rather than figures (right-aligned, kept on one line)."""
    return [not all(_NUMBER.match(str(v)) for v in table[c] if str(v) not in ("", "nan")) or
            all(str(v) in ("", "nan") for v in table[c]) for c in table.columns]


def _html_table(table: pd.DataFrame, pareto: bool = False) -> str:
    esc = html.escape
    css = [" class='text'" if text else "" for text in _text_columns(table)]
    head = "".join(f"<th{kind}>{esc(str(c))}</th>" for c, kind in zip(table.columns, css, strict=True))
    rows = []
    for row in table.itertuples(index=False):
        marked = " class='pareto'" if pareto and str(row[-1]).startswith("★") else ""
        rows.append(f"<tr{marked}>" + "".join(f"<td{kind}>{esc(str(v))}</td>" for v, kind in zip(row, css, strict=True))
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# a group table's least important columns: in the HTML page they fold into a second table, under a closed
# <details>, so that the table fits a 1400-pixel window (the Markdown and CSV keep every column in one table)
# (a pipeline study's tables fold the ranges and estimates behind their spreads and errors)
FOLDED_COLUMNS = ("steps", "params nonzero", "GMACs effective", "dense ms, same run", "measured / predicted",
                  "fidelity (output CKA)", "measurements")
FOLDED_ENDINGS = tuple(f" {ending}" for ending in RANGES_AND_ESTIMATES)


def _folded(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``table`` without its :data:`FOLDED_COLUMNS` (and columns ending as :data:`FOLDED_ENDINGS`), and those
    columns, beside the first (what each row is), as a closed ``<details>`` block ("" where it has none)."""
    folded = [c for c in table.columns if c in FOLDED_COLUMNS or str(c).endswith(FOLDED_ENDINGS)]
    if not folded:
        return table, ""
    summary = f"more columns: {', '.join(folded)}"
    return (table.drop(columns=folded), f"<details><summary>{html.escape(summary)}</summary>"
            f"{_html_table(table[[table.columns[0], *folded]])}</details>")


def html_report(landscape: Landscape, frame: pd.DataFrame, svgs: dict[str, str],
                studies: Sequence[StudyTables] = ()) -> str:
    esc = html.escape
    machines = sorted({m for m in frame["machine"] if m != "not timed"})
    body = [f"<h1>compbench landscape</h1><p>{esc(records_phrase(landscape, frame))} from "
            f"{esc(', '.join(landscape.sources))} "
            f"(compbench {__version__}, {datetime.now(UTC):%Y-%m-%d}).</p>"]
    if machines:
        body.append("<p>Machines: " + "; ".join(map(esc, machines)) + ".</p>")
    body.append("<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in READING_NOTES) + "</ul>")
    for title, table in group_tables(frame):
        shown, folded = _folded(table)
        body.append(f"<h2>{esc(title)}</h2>{_html_table(shown, pareto=True)}"
                    + _unconverged_note(table, "<p class='note'>{}</p>", esc) + folded)
    for comparison in runtime_comparisons(frame):
        body.append(f"<h2>Runtimes: {esc(comparison.title)}</h2><p>{esc(RUNTIMES_NOTE)}</p>"
                    f"<p>{esc(comparison.summary)}.</p>{_html_table(comparison.table)}")
    for name in CHARTS:
        body.append(f"<figure><figcaption><h2>{esc(CHART_TITLES[name])}</h2></figcaption>"
                    f"{_svg_inline(svgs[name])}</figure>")
    for study in studies:
        body.append(f"<h2>Pipeline study: {esc(study.title)}</h2><p>{esc(STUDY_NOTE)}</p>"
                    f"<p>{esc(summary_line(study))}.</p>")
        for title, table in display_tables(study):
            shown, folded = _folded(table)
            body.append(f"<h3>{esc(title)}</h3>{_html_table(shown)}{folded}")
        body.append(f"<figure>{_svg_inline(svgs[study_chart_name(study)])}</figure>")
    if landscape.failures:
        rows = "".join(f"<tr><td>{esc(label)}</td><td><code>{esc(job)}</code></td><td>{esc(error)}</td></tr>"
                       for label, job, error in _failure_rows(landscape.failures))
        body.append(f"<h2>Failed jobs</h2><table><tr><th>job</th><th>key</th><th>error</th></tr>{rows}</table>")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>compbench landscape</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def csv_report(frame: pd.DataFrame) -> str:
    flat = frame.drop(columns=["macs_by_component"]).copy()
    components = sorted({c for d in frame["macs_by_component"] for c in d})
    for component in components:
        flat[f"macs_{component}"] = [d.get(component, 0) for d in frame["macs_by_component"]]
    return frame_to_csv(flat)


def write_report(paths: Sequence[str | Path], out_dir: str | Path, formats: Iterable[str] = FORMATS,
                 warn: Callable[[str], None] | None = None, labels: dict[str, str] | None = None) -> list[Path]:
    """Write the landscape of ``paths`` (results files) into ``out_dir``; return the files written. ``warn``
    hears what the user should know about the input (records read again); ``labels`` (model as the records name
    it -> words) say what models are where their records do not."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InvalidInputError(f"--format takes {', '.join(FORMATS)}; got {', '.join(unknown) or 'none'}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir} is a file; give a folder")
    landscape = load_landscape(paths, labels)
    if warn is not None and landscape.repeated_warning():
        warn(landscape.repeated_warning())
    frame = landscape_frame(landscape)
    files: dict[str, bytes] = {}
    svgs = {}
    studies = study_tables(landscape.records)
    figures = {name: plot(frame) for name, plot in CHARTS.items()}
    figures.update({study_chart_name(study): plot_estimate_vs_measured(study) for study in studies})
    for name, figure in figures.items():
        for suffix in ("png", "svg"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=suffix, dpi=120 if suffix == "png" else None,
                           metadata={"Date": None} if suffix == "svg" else None)
            files[f"{name}.{suffix}"] = buffer.getvalue()
        svgs[name] = files[f"{name}.svg"].decode("utf-8")
    if "md" in formats:
        files["landscape.md"] = markdown_report(landscape, frame, CHARTS, studies).encode("utf-8")
    if "html" in formats:
        files["landscape.html"] = html_report(landscape, frame, svgs, studies).encode("utf-8")
    if "csv" in formats:
        files["landscape.csv"] = csv_report(frame).encode("utf-8")
    return _move_into(out_dir, files)


def _move_into(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    try:
        staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    except OSError as err:
        raise ResultsWriteError(f"cannot write the report to {out_dir}: {err.strerror or err}") from None
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        out_dir.mkdir(exist_ok=True)
        for name in files:
            os.replace(staging / name, out_dir / name)
    except OSError as err:
        raise ResultsWriteError(f"cannot write the report to {out_dir}: {err.strerror or err}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]
