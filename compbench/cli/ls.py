"""``compbench ls``: what compbench knows: model presets (and later compressors and tasks)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from compbench.models import PRESETS


def list_presets() -> list[dict]:
    """Every model preset with its modality, source checkpoint and description."""
    return [{"name": p.name, "modality": p.modality, "checkpoint": p.checkpoint,
             "description": p.description} for _, p in PRESETS.items()]


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="list model presets",
                            description="List what compbench can measure.")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace) -> int:
    presets = list_presets()
    if args.format == "json":
        print(json.dumps({"models": presets}, indent=2))
        return 0
    table = Table(title="model presets (architecture-exact; --weights random needs no download)",
                  title_justify="left")
    for column in ("name", "modality", "checkpoint", "description"):
        table.add_column(column)
    for p in presets:
        table.add_row(p["name"], p["modality"], p["checkpoint"], p["description"])
    Console(file=sys.stdout, width=160).print(table)
    return 0
