"""``compbench ls``: what compbench knows (:mod:`compbench.catalog`): presets, compressors, tasks, runtimes."""

from __future__ import annotations

import argparse
import json
import sys

from compbench.catalog import list_compressors, list_presets, list_runtimes, list_tasks
from compbench.cli.tables import Column, console, output_width, print_table


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
    out = console(sys.stdout, output_width())
    print_table(out, "model presets (architecture-exact; --weights random needs no download)",
                [Column("name"), Column("modality"), Column("checkpoint", drop=1), Column("description", wraps=True)],
                [(p["name"], p["modality"], p["checkpoint"], p["description"]) for p in presets])
    rows = []
    for c in compressors:
        options = "\n".join(f"{n}: {o['type']} = {o['default']!r}" + (f" ({'|'.join(map(str, o['choices']))})"
                                                                        if o["choices"] else "")
                             for n, o in c["options"].items())
        rows.append((c["name"], "[0, 1)" if c["takes_amount"] else "none", c["task_data"],
                     ", ".join(c["runtimes"] or ["all"]), options or "-", c["description"]))
    print_table(out, "compressors (--compress name=amount,...; options from --compress-options FILE)",
                [Column("name"), Column("amount"), Column("task data", wraps=True, drop=2),
                 Column("runtimes", wraps=True, drop=1), Column("options", wraps=True, drop=3),
                 Column("description", wraps=True)], rows)
    print_table(out, "tasks (tasks/*.yaml; data from --data-root or $COMPBENCH_DATA_ROOT)",
                [Column("name"), Column("version", right=True, drop=2), Column("input"),
                 Column("output", drop=3), Column("metric"), Column("protocol", drop=1),
                 Column("description", wraps=True)],
                [(t["name"], t["version"], t["input"], f"{t['labels']} labels" if t["output"] == "label"
                  else t["output"], t["metric"], t["protocol"], t["description"]) for t in tasks])
    installed = [r["version"] if r["available"] else f"not installed: pip install 'compbench[{r['extra']}]'"
                 for r in runtimes]
    print_table(out, "runtimes (--runtime; several are timed interleaved)",
                [Column("name"), Column("version here", wraps=True), Column("description", wraps=True)],
                [(r["name"], version, r["description"]) for r, version in zip(runtimes, installed, strict=True)])
    return 0
