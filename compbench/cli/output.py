"""Rendering records for the terminal: a table, JSON or CSV."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from compbench.cli.tables import Column, console, output_width, print_table
from compbench.metrics import metric_of
from compbench.record import input_label, real_time_factor, runtime_name
from compbench.report.landscape import UNCONVERGED, UNCONVERGED_MEANS, variant_label
from compbench.store import frame_to_csv, records_to_frame

FORMATS = ("table", "json", "csv")


class StageLines:
    """Progress off a terminal (a log, a pipe, CI): one line per stage, ``[elapsed] description``. A stage is a
    description with its counts left out (``distill step 40/400 loss 0.31`` is the stage ``distill step #/#
    loss #``; ``head_pruning=0.25`` and ``head_pruning=0.5`` are two), so a stage that reports every step or
    round prints one line, and each variant loaded, compressed or timed prints its own; a stage that goes on
    prints its latest description again every ``every_s`` seconds, with how far it has got (the fraction it
    reports). ``clock`` gives seconds (tests give their own)."""

    def __init__(self, write: Callable[[str], None], every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.write, self.every_s, self.clock = write, every_s, clock
        self.start = clock()
        self.stage: str | None = None
        self.last_line = self.start

    def __call__(self, description: str, done: float) -> None:
        now = self.clock()
        stage = _NUMBERS.sub("#", description)
        if stage == self.stage and now - self.last_line < self.every_s:
            return
        again = stage == self.stage
        self.stage, self.last_line = stage, now
        self.write(f"[{_elapsed(now - self.start)}] {description}" + (f" ({done:.0%} done)" if again else "") + "\n")


# counts and measures that change as a stage goes on (``40/400``, ``loss 0.31``, ``45%``); not a number that is part
# of a name or a setting (``minilm-l6``, ``head_pruning=0.5``, ``16tok``), which makes another stage
_NUMBERS = re.compile(r"(?<![\w=.\-])\d+(?:\.\d+)?(?![\w.])")


def _elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


@contextmanager
def progress_bar(start: str = "starting") -> Iterator[Callable[[str, float], None]]:
    """Progress on stderr; yields ``update(description, fraction)``. On a terminal, a transient bar; otherwise
    :class:`StageLines`, one line per stage. Descriptions are plain text (a model or variant name is never read
    as rich markup)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        def write(line: str) -> None:
            sys.stderr.write(line)
            sys.stderr.flush()

        yield StageLines(write)
        return
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(start, total=1.0)
        yield lambda text, done: bar.update(task, description=text, completed=done)


def table_variant(record: dict) -> str:
    """What the terminal shows in a row's variant column: the steps, ``dense``, or for a model measured against a
    baseline, ``dense, against hubert-base`` (its model column already names it)."""
    if record.get("baseline"):
        return f"dense, against {record['baseline']}"
    return variant_label(record).replace(",", ", ")  # wraps between steps, not inside one


def records_columns(records: list[dict]) -> tuple[list[Column], list[list[str]]]:
    """The terminal table of ``records``: its columns (those the records fill; the least important left out
    first on a narrow terminal, in the order of their ``drop``) and one row per record."""
    has_latency = any("latency_ms" in r for r in records)
    has_rtf = any(real_time_factor(r) for r in records)  # speech: seconds of compute per second of audio
    has_audit = any("audit" in r for r in records)
    several_runtimes = len({runtime_name(r) for r in records}) > 1
    has_speedup = any("speedup" in r for r in records)
    has_quality = any("quality" in r for r in records)
    columns = [Column("model", wraps=True), Column("variant", wraps=True), Column("input")]
    columns += [Column("runtime")] if several_runtimes else []
    columns += [Column("params", right=True), Column("nonzero", right=True, drop=4),
                Column("GMACs", right=True), Column("GMACs eff", right=True, drop=5)]
    if has_latency:
        columns += [Column("median ms", right=True)] + [Column("RTF", right=True, drop=9)] * has_rtf
        columns += [Column("IQR ms", right=True, drop=1),
                    Column("95% CI ms", right=True, drop=13), Column("runs", right=True, drop=7),
                    Column("GFLOP/s", right=True, drop=2), Column("% peak", right=True, drop=6),
                    Column("peak MB", right=True, drop=3)]
    if has_speedup:
        columns += [Column("speedup", right=True), Column("pred.", right=True, drop=8)]
    if has_quality:
        task = next(r["quality"] for r in records if "quality" in r)
        lower = "" if metric_of(task["metric"]).higher_is_better else " (lower better)"
        columns += [Column(f"{task['task']} {task['metric']}{lower}", right=True),
                    Column("output CKA", right=True, drop=10)]
    if has_audit:
        columns += [Column("fvcore Δ", right=True, drop=11), Column("thop Δ", right=True, drop=12)]
    rows = []
    for r in records:
        nonzero = "?" if r["params_nonzero"] is None else f"{r['params_nonzero']:,}"
        runtime = [runtime_name(r)] if several_runtimes else []
        variant = table_variant(r)
        row = [r.get("label") or r["model"], variant, input_label(r), *runtime, f"{r['params']:,}", nonzero,
               f"{r['macs'] / 1e9:,.3f}", f"{r['macs_effective'] / 1e9:,.3f}"]
        if has_latency:
            lat = r.get("latency_ms")
            if lat:
                ci = (f"{lat['ci95_low']:.2f}–{lat['ci95_high']:.2f}"
                      if lat["ci95_low"] is not None else "n/a")
                memory = r.get("memory")
                median = f"{lat['median']:.2f}" + ("" if lat.get("converged", True) else UNCONVERGED)
                row += [median] + [real_time_factor_cell(r)] * has_rtf
                row += [f"{lat['iqr']:.2f}", ci, str(lat["runs"]),
                        f"{r['achieved_flops_per_s'] / 1e9:.1f}", f"{r['fraction_of_peak']:.0%}",
                        f"{memory['peak_bytes'] / 2**20:.0f}" if memory else ""]
            else:
                row += [""] * (7 + has_rtf)
        if has_speedup:
            row += [f"{r['speedup']:.2f}×", f"{r['predicted_speedup']:.2f}×"] if "speedup" in r else ["", ""]
        if has_quality:
            quality, fidelity = r.get("quality"), r.get("fidelity")
            cka = fidelity.get("output_cka", fidelity["last_cka"]) if fidelity else None
            row += [f"{quality['value']:.4f}" if quality else "", "" if cka is None else f"{cka:.4f}"]
        if has_audit:
            audit = r.get("audit", {})
            row += [_audit_cell(audit.get("fvcore")), _audit_cell(audit.get("thop"))]
        rows.append(row)
    return columns, rows


def real_time_factor_cell(record: dict) -> str:
    """A speech record's RTF as shown (``0.246``; per example, the corpus's: ``0.031 mean``); empty for text."""
    rtf = real_time_factor(record)
    if not rtf:
        return ""
    return f"{rtf['median']:.3f}" if "median" in rtf else f"{rtf['mean']:.3f} mean"


def _audit_cell(entry: dict | None) -> str:
    if not entry:
        return ""
    if "error" in entry:
        return "failed"
    return f"{entry['relative_difference']:+.2%}"


def warn(message: str) -> None:
    """A warning for the user, on stderr: ``compbench: warning: ...``."""
    print(f"compbench: warning: {message}", file=sys.stderr)


def render(records: list[dict], fmt: str, width: int | None = None) -> str:
    """The records as text in ``fmt`` (table, json or csv); a table ``width`` characters wide (default: the
    terminal's, :func:`~compbench.cli.tables.output_width`)."""
    if fmt == "json":
        return json.dumps(records, indent=2)
    if fmt == "csv":
        return frame_to_csv(records_to_frame(records))
    buffer = io.StringIO()
    out = console(buffer, output_width() if width is None else width)
    print_table(out, "compbench measurements", *records_columns(records))
    if any(not (r.get("latency_ms") or {}).get("converged", True) for r in records):
        out.print(Text(f"{UNCONVERGED} {UNCONVERGED_MEANS} (the warnings below): compare such medians with care, or "
                       "give more --budget or --max-runs"))
    for r in records:
        for warning in r.get("warnings", []):
            out.print(Text(f"warning: {r.get('label') or r['model']} {table_variant(r)} {input_label(r)}: {warning}"))
    return buffer.getvalue()
