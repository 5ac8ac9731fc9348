"""Rendering records for the terminal: a table, JSON or CSV."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from compbench.record import input_label, runtime_name
from compbench.report.landscape import variant_label
from compbench.store import records_to_frame

FORMATS = ("table", "json", "csv")


@contextmanager
def progress_bar(start: str = "starting") -> Iterator[Callable[[str, float], None]]:
    """A transient progress bar on stderr (when it is a terminal); yields ``update(description, fraction)``."""
    console = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(start, total=1.0)
        yield lambda text, done: bar.update(task, description=text, completed=done)


def records_table(records: list[dict]) -> Table:
    table = Table(title="compbench measurements", title_justify="left")
    has_latency = any("latency_ms" in r for r in records)
    has_audit = any("audit" in r for r in records)
    runtimes = {runtime_name(r) for r in records}
    columns = ("model", "variant", "input") + (("runtime",) if len(runtimes) > 1 else ()) + (
        "params", "nonzero", "GMACs", "GMACs eff")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "variant", "input", "runtime") else "right")
    has_speedup = any("speedup" in r for r in records)
    if has_latency:
        for column in ("median ms", "IQR ms", "95% CI ms", "runs", "GFLOP/s", "% peak", "peak MB"):
            table.add_column(column, justify="right")
    if has_speedup:
        for column in ("speedup", "pred."):
            table.add_column(column, justify="right")
    has_quality = any("quality" in r for r in records)
    if has_quality:
        task = next(r["quality"] for r in records if "quality" in r)
        for column in (f"{task['task']} {task['metric']}", "output CKA"):
            table.add_column(column, justify="right")
    if has_audit:
        for column in ("fvcore Δ", "thop Δ"):
            table.add_column(column, justify="right")
    for r in records:
        nonzero = "?" if r["params_nonzero"] is None else f"{r['params_nonzero']:,}"
        runtime = [runtime_name(r)] if len(runtimes) > 1 else []
        row = [r["model"], variant_label(r), input_label(r), *runtime, f"{r['params']:,}", nonzero,
               f"{r['macs'] / 1e9:,.3f}", f"{r['macs_effective'] / 1e9:,.3f}"]
        if has_latency:
            lat = r.get("latency_ms")
            if lat:
                ci = (f"{lat['ci95_low']:.2f}–{lat['ci95_high']:.2f}"
                      if lat["ci95_low"] is not None else "n/a")
                memory = r.get("memory")
                row += [f"{lat['median']:.2f}", f"{lat['iqr']:.2f}", ci, str(lat["runs"]),
                        f"{r['achieved_flops_per_s'] / 1e9:.1f}", f"{r['fraction_of_peak']:.0%}",
                        f"{memory['peak_bytes'] / 2**20:.0f}" if memory else ""]
            else:
                row += [""] * 7
        if has_speedup:
            row += [f"{r['speedup']:.2f}×", f"{r['predicted_speedup']:.2f}×"] if "speedup" in r else ["", ""]
        if has_quality:
            quality, fidelity = r.get("quality"), r.get("fidelity")
            cka = fidelity.get("output_cka", fidelity["last_cka"]) if fidelity else None
            row += [f"{quality['value']:.4f}" if quality else "", "" if cka is None else f"{cka:.4f}"]
        if has_audit:
            audit = r.get("audit", {})
            row += [_audit_cell(audit.get("fvcore")), _audit_cell(audit.get("thop"))]
        table.add_row(*row)
    return table


def _audit_cell(entry: dict | None) -> str:
    if not entry:
        return ""
    if "error" in entry:
        return "failed"
    return f"{entry['relative_difference']:+.2%}"


def render(records: list[dict], fmt: str) -> str:
    """The records as text in ``fmt`` (table, json or csv)."""
    if fmt == "json":
        return json.dumps(records, indent=2)
    if fmt == "csv":
        return records_to_frame(records).to_csv(index=False)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, force_terminal=False, color_system=None)
    console.print(records_table(records))
    for r in records:
        for warning in r.get("warnings", []):
            console.print(f"warning: {r['model']} {input_label(r)}: {warning}")
    return buffer.getvalue()
