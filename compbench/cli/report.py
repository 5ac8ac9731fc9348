"""``compbench report``: the landscape of one or more results files as tables, charts and an HTML page."""

from __future__ import annotations

import argparse

from compbench.cli.output import warn
from compbench.errors import InvalidInputError
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
    p.add_argument("--label", action="append", metavar="MODEL=NAME",
                   help="show MODEL (as its records name it: a preset, hub id or folder) as NAME, e.g. "
                        "/tmp/ft='minilm-l6 fine-tuned on rt-polarity'; repeat for several (records keep theirs)")


def parse_labels(values: list[str] | None) -> dict[str, str]:
    """``MODEL=NAME`` pairs: each model once, neither side empty."""
    labels = {}
    for value in values or []:
        model, equals, name = value.partition("=")
        if not equals or not model.strip() or not name.strip():
            raise InvalidInputError(f"--label takes MODEL=NAME, got {value!r}")
        if model.strip() in labels:
            raise InvalidInputError(f"--label gives {model.strip()} twice")
        labels[model.strip()] = name.strip()
    return labels


def run(args: argparse.Namespace) -> int:
    labels = parse_labels(args.label)
    check_output_folder(args.out, "the report", empty=False)
    for path in write_report(args.results, args.out, args.format, warn, labels):
        print(path)
    return 0
