"""``compbench pipelines``: operators alone and in every order; commutativity and cumulativeness."""

from __future__ import annotations

import argparse
import sys

from rich.text import Text

from compbench.cli.measure import add_measurement_arguments, measurement_options, options_by_name
from compbench.cli.output import progress_bar, warn
from compbench.cli.tables import Column, console, output_width, print_table
from compbench.compression.spec import parse_spec
from compbench.outputs import check_output_folder
from compbench.pipeline_study import MAX_OPERATORS, run_pipeline_study
from compbench.report.pipelines import RANGES_AND_ESTIMATES, display_tables, study_tables, summary_line
from compbench.report.write import write_report
from compbench.store import append_records, existing_records


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(
        name, help="run operators alone and in every order: commutativity and cumulativeness",
        description="Measure a model, each operator (a compression pipeline) alone and every order of all of "
                    "them in one run; report the spread over orders (commutativity) and the error of the "
                    "estimate from the operators alone (cumulativeness).")
    p.add_argument("--model", required=True, metavar="M", help="preset name, hub id or save_pretrained directory")
    p.add_argument("--task", required=True, metavar="T", help="the task whose quality every pipeline reports")
    p.add_argument("--op", action="append", required=True, metavar="SPEC",
                   help=f"an operator: a pipeline as for measure --compress (head_pruning=0.5, int8_dynamic or a "
                        f"YAML/JSON file); repeat, 2 to {MAX_OPERATORS}")
    p.add_argument("--subsets", action="store_true",
                   help="also every order of every subset of two or more operators")
    add_measurement_arguments(p)
    p.add_argument("--out", required=True, metavar="FILE", help="append the records to this JSONL results file")
    p.add_argument("--report", metavar="DIR", help="also write the report of --out (with the study) into DIR")


TEXT_COLUMNS = ("pipeline", "operators", "reason")
# on a narrow terminal, columns whose names contain these are left out first, in this order
LEFT_OUT_FIRST = RANGES_AND_ESTIMATES + ("params / dense", "GMACs", "orders run", "refused")


def _columns(frame) -> list[Column]:
    def drop(position: int, name: str) -> int:
        rank = next((rank for rank, part in enumerate(LEFT_OUT_FIRST, start=1) if part in name), 0)
        return rank and rank * 100 + position

    return [Column(str(name), right=name not in TEXT_COLUMNS, wraps=name in TEXT_COLUMNS, drop=drop(position, name))
            for position, name in enumerate(frame.columns)]


def run(args: argparse.Namespace) -> int:
    named = options_by_name(args)
    operators = [parse_spec(spec, named) for spec in args.op]
    options = measurement_options(args)
    existing_records(args.out)  # refuse a corrupt or foreign results file, or an unwritable place, before measuring
    if args.report:
        check_output_folder(args.report, "the report", empty=False)
    with progress_bar() as update:
        records = run_pipeline_study(args.model, args.task, operators, args.subsets, options, update)
    append_records(args.out, records)
    out = console(sys.stdout, output_width())
    for tables in study_tables(records):
        out.print(Text(tables.title))
        for title, table in display_tables(tables):
            print_table(out, title, _columns(table), table.itertuples(index=False))
        out.print(Text(summary_line(tables)))
    if args.report:
        for path in write_report([args.out], args.report, warn=warn):
            print(path)
    return 0
