"""Runtimes side by side: where one run timed its variants under several runtimes (``--runtime``), each
variant's latency under each, and which runtime is fastest, per model and input.

Latencies under different runtimes are compared only within one run: they were timed interleaved in
the same rounds on the same machine, so the machine's drift between runs does not move the ratio.
A runtime is called fastest only when its 95 % interval clears the next one's; otherwise the
statement says the two are not separated.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from compbench.report.landscape import NOT_TIMED


@dataclass
class RuntimeComparison:
    """One run's variants under its runtimes, for one model, input and machine."""

    title: str  # model · input · machine
    runtimes: list[str]  # in the order the run measured them
    table: pd.DataFrame  # per variant: median ms [95 % CI] under each runtime, the fastest runtime
    dense_fastest: str  # the runtime with the lowest dense median
    summary: str  # one sentence: the fastest runtime for the dense model, and the fastest variant overall


def _fastest(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series | None, bool]:
    """The row with the lowest median, the runner-up, and whether their 95 % intervals are separated."""
    ordered = rows.sort_values("latency_ms", kind="stable")
    best = ordered.iloc[0]
    second = ordered.iloc[1] if len(ordered) > 1 else None
    separated = second is None or best["latency_ci_high"] < second["latency_ci_low"]
    return best, second, separated


def _ms(value: float, low: float, high: float) -> str:
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _fastest_phrase(rows: pd.DataFrame) -> str:
    best, second, separated = _fastest(rows)
    if separated:
        return best["runtime"]
    return f"{best['runtime']} (≈ {second['runtime']}: intervals overlap)"


def runtime_comparisons(frame: pd.DataFrame) -> list[RuntimeComparison]:
    """For every run that timed one model and input under more than one runtime: a table and a summary."""
    sized = frame[(frame["machine"] != NOT_TIMED) & ~frame["per_example"] & frame["latency_ms"].notna()]
    comparisons = []
    for (model, size, machine, _), run in sized.groupby(["model", "input", "machine", "run_id"], sort=False):
        runtimes = list(dict.fromkeys(run["runtime"]))
        if len(runtimes) < 2:
            continue
        rows = []
        for variant, variant_rows in run.groupby("variant", sort=False):
            row = {"variant": variant}
            for runtime in runtimes:
                measured = variant_rows[variant_rows["runtime"] == runtime]
                row[f"{runtime} ms [95% CI]"] = (_ms(*measured.iloc[0][["latency_ms", "latency_ci_low",
                                                                          "latency_ci_high"]])
                                                 if len(measured) else "not run")
            row["fastest runtime"] = _fastest_phrase(variant_rows)
            rows.append(row)
        dense = run[run["is_dense"]]
        reference = "eager" if "eager" in runtimes else runtimes[0]
        dense_best, dense_next, dense_separated = _fastest(dense)
        best, following, separated = _fastest(run)
        others = ", ".join(f"{r['runtime']} {r['latency_ms']:.1f} ms"
                           for _, r in dense.sort_values("latency_ms").iloc[1:].iterrows())
        ratio = dense[dense["runtime"] == reference]["latency_ms"].min() / best["latency_ms"]
        dense_tie = "" if dense_separated else f", not separated from {dense_next['runtime']}"
        tie = "" if separated else f", not separated from {following['variant']} under {following['runtime']}"
        summary = (f"{model} · {size}: the dense model is fastest under {dense_best['runtime']} "
                   f"({dense_best['latency_ms']:.1f} ms; {others}){dense_tie}; "
                   f"the fastest of all is {best['variant']} under {best['runtime']} ({best['latency_ms']:.1f} ms, "
                   f"{ratio:.2f}× as fast as the dense model under {reference}){tie}")
        comparisons.append(RuntimeComparison(f"{model} · {size} · {machine}", runtimes, pd.DataFrame(rows),
                                             dense_best["runtime"], summary))
    return comparisons
