"""``compbench ls``: what compbench knows: model presets, compressors with their options, tasks."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from compbench.compressors import COMPRESSORS
from compbench.errors import CompbenchError
from compbench.models import PRESETS
from compbench.runtimes import RUNTIMES
from compbench.tasks import find_task, task_files


def list_presets() -> list[dict]:
    """Every model preset with its modality, source checkpoint and description."""
    return [{"name": p.name, "modality": p.modality, "checkpoint": p.checkpoint,
             "description": p.description} for _, p in PRESETS.items()]


def task_data_use(compressor) -> str:
    """``none``, ``optional`` (uses ``--task`` data when given) or ``required`` (with its default options)."""
    if not compressor.uses_context:
        return "none"
    return "required" if compressor.needs_task(compressor.check_options({})) else "optional"


def list_compressors() -> list[dict]:
    """Every compressor with whether it takes an amount, whether it uses task data, the runtimes its variants
    run under (None: all) and its options."""
    return [{"name": c.name, "takes_amount": c.takes_amount, "task_data": task_data_use(c),
             "runtimes": list(c.runtimes) if c.runtimes else None, "description": c.description,
             "options": {name: {"type": o.type_name,
                                "default": o.default, "choices": list(o.choices) if o.choices else None,
                                "help": o.help} for name, o in c.options.items()}}
            for _, c in COMPRESSORS.items()]


def list_tasks() -> list[dict]:
    """Every shipped task (each file is validated as it is listed)."""
    tasks = [find_task(name) for name in task_files()]
    return [{"name": t.name, "version": t.version, "input": t.input, "labels": len(t.labels), "metric": t.metric,
             "protocol": t.protocol, "description": t.description} for t in tasks]


def list_runtimes() -> list[dict]:
    """Every runtime (``--runtime``), with the pip extra it needs and whether that is installed here."""
    rows = []
    for name, runtime in RUNTIMES.items():
        try:
            version, available = runtime.version(), True
        except CompbenchError:
            version, available = None, False
        rows.append({"name": name, "description": runtime.description, "extra": runtime.extra,
                     "available": available, "version": version})
    return rows


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
