"""``compbench ls``: what compbench knows: model presets and compressors with their options."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from compbench.compressors import COMPRESSORS
from compbench.models import PRESETS


def list_presets() -> list[dict]:
    """Every model preset with its modality, source checkpoint and description."""
    return [{"name": p.name, "modality": p.modality, "checkpoint": p.checkpoint,
             "description": p.description} for _, p in PRESETS.items()]


def list_compressors() -> list[dict]:
    """Every compressor with whether it takes an amount and its options."""
    return [{"name": c.name, "takes_amount": c.takes_amount, "description": c.description,
             "options": {name: {"type": o.type.__name__ if isinstance(o.type, type) else str(o.type),
                                "default": o.default, "choices": list(o.choices) if o.choices else None,
                                "help": o.help} for name, o in c.options.items()}}
            for _, c in COMPRESSORS.items()]


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="list model presets and compressors",
                            description="List what compbench can measure.")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    presets, compressors = list_presets(), list_compressors()
    if args.format == "json":
        print(json.dumps({"models": presets, "compressors": compressors}, indent=2))
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
    for column in ("name", "amount", "options", "description"):
        table.add_column(column)
    for c in compressors:
        opts = "\n".join(f"{n}: {o['type']} = {o['default']!r}" + (f" ({'|'.join(map(str, o['choices']))})"
                                                                     if o["choices"] else "")
                         for n, o in c["options"].items())
        table.add_row(c["name"], "[0, 1)" if c["takes_amount"] else "none", opts or "-", c["description"])
    console.print(table)
    return 0
