"""``compbench report``: the landscape of one or more results files as tables, charts and an HTML page."""

from __future__ import annotations

import argparse

from compbench.cli.output import warn
from compbench.outputs import check_output_folder
from compbench.report.write import FORMATS, write_report


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(
        name, help="write the landscape: tables with Pareto marks, charts (PNG, SVG), an HTML page",
        description="Write tables (per model and input size, Pareto-optimal rows marked), four charts as PNG and "
                    "SVG, and a self-contained HTML page, from results files alone (any machine's).")
    p.add_argument("results", nargs="+", metavar="RESULTS.jsonl", help="results files (compbench measure or sweep)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder to write into (created if missing; its parent must exist)")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=list(FORMATS), metavar="FORMAT",
                   help=f"any of {', '.join(FORMATS)} (default: all); the charts are always written")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "the report", empty=False)
    for path in write_report(args.results, args.out, args.format, warn):
        print(path)
    return 0
