"""``compbench ls``: what compbench knows (:mod:`compbench.catalog`): presets, compressors, tasks, runtimes."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from compbench.catalog import list_compressors, list_presets, list_runtimes, list_tasks


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="list model presets, compressors, tasks and runtimes",
                            description="List what compbench can measure.")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    presets, compressors, tasks, runtimes = list_presets(), list_compressors(), list_tasks(), list_runtimes()
    if args.format == "json":
        print(json.dumps({"models": presets, "compressors": compressors, "tasks": tasks, "runtimes": runtimes},
                         indent=2))
        return 0
    table = Table(title="model presets (architecture-exact; --weights random needs no download)",
                  title_justify="left")
    for column in ("name", "modality", "checkpoint", "description"):
        table.add_column(column)
    for p in presets:
        table.add_row(p["name"], p["modality"], p["checkpoint"], p["description"])
    console = Console(file=sys.stdout, width=160)
    console.print(table)
    table = Table(title="compressors (--compress name=amount,...; options from --compress-options FILE)",
                  title_justify="left")
    for column in ("name", "amount", "task data", "runtimes", "options", "description"):
        table.add_column(column)
    for c in compressors:
        opts = "\n".join(f"{n}: {o['type']} = {o['default']!r}" + (f" ({'|'.join(map(str, o['choices']))})"
                                                                     if o["choices"] else "")
                         for n, o in c["options"].items())
        table.add_row(c["name"], "[0, 1)" if c["takes_amount"] else "none", c["task_data"],
                      ", ".join(c["runtimes"] or ["all"]), opts or "-", c["description"])
    console.print(table)
    table = Table(title="tasks (tasks/*.yaml; data from --data-root or $COMPBENCH_DATA_ROOT)", title_justify="left")
    for column in ("name", "version", "input", "labels", "metric", "protocol", "description"):
        table.add_column(column)
    for t in tasks:
        table.add_row(t["name"], str(t["version"]), t["input"], str(t["labels"]), t["metric"], t["protocol"],
                      t["description"])
    console.print(table)
    table = Table(title="runtimes (--runtime; several are timed interleaved)", title_justify="left")
    for column in ("name", "version here", "description"):
        table.add_column(column)
    for r in runtimes:
        missing = f"not installed: pip install 'compbench[{r['extra']}]'"
        table.add_row(r["name"], r["version"] if r["available"] else missing, r["description"])
    console.print(table)
    return 0
