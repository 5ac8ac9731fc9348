"""MkDocs hook: the tables of the reference pages, generated from the code when the site is built.

A page asks for a table with a marker line, ``<!-- compbench:NAME -->``; :data:`TABLES` maps each NAME
to a function of :mod:`compbench.catalog` (what ``compbench ls`` prints), the record type
(:mod:`compbench.record`) or the argument parser (``compbench --help``), so the documentation cannot
drift from the code. ``<!-- compbench:landscape results/FILE.jsonl -->`` is every table ``compbench report``
writes for a committed results file, by the report's own functions, so a study page cannot drift from its
results. The reference results' charts (``results/**/*.png``) join the site as they are.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path

from mkdocs.structure.files import File, Files

from compbench.catalog import list_compressors, list_presets, list_runtimes, list_tasks
from compbench.record import Environment, LatencyMs, Record, describe_fields

REPOSITORY = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- compbench:([a-z-]+)(?: (\S+))? -->$", re.MULTILINE)


def cell(text: object) -> str:
    """Text for one table cell: pipes escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def written(value: object) -> str:
    """An option's default as a user writes it in YAML: ``true``, ``null``, ``0.5``, ``magnitude``."""
    return json.dumps(value) if not isinstance(value, str) else value


def compressors_table() -> str:
    """Every registered compressor: whether it takes an amount, its task data, its runtimes, what it does."""
    return table(["compressor", "amount", "task data", "runtimes", "what it does"],
                 [[f"`{c['name']}`", "[0, 1)" if c["takes_amount"] else "none", c["task_data"],
                   ", ".join(c["runtimes"] or ["all"]), c["description"]] for c in list_compressors()])


def compressor_options() -> str:
    """A section per registered compressor, its options in a table: type, default, choices, meaning."""
    sections = []
    for c in list_compressors():
        amount = "an amount in [0, 1)" if c["takes_amount"] else "no amount (`--compress " + c["name"] + "`)"
        head = [f"### `{c['name']}`", "", f"{c['description']}. Takes {amount}; task data: {c['task_data']}; "
                f"runtimes: {', '.join(c['runtimes'] or ['all'])}.", ""]
        if c["options"]:
            rows = [[f"`{name}`", option["type"], f"`{written(option['default'])}`",
                     ", ".join(f"`{choice}`" for choice in option["choices"] or []), option["help"]]
                    for name, option in c["options"].items()]
            head.append(table(["option", "type", "default", "choices", "meaning"], rows))
        else:
            head.append("No options.")
        sections.append("\n".join(head))
    return "\n\n".join(sections)


def type_name(hint: object) -> str:
    """A field's type as a reader writes it: ``str or null``, ``list[float]``, ``LatencyMs``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return " or ".join(type_name(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "")


def fields_table(schema: type) -> str:
    return table(["field", "type", "always there", "meaning"],
                 [[f"`{name}`", f"`{type_name(hint)}`", "yes" if required else "", description]
                  for name, hint, required, description in describe_fields(schema)])


def presets_table() -> str:
    """Every preset, with its params and MACs from the committed reference counts where they are."""
    counts = {}
    counts_file = REPOSITORY / "results" / "preset-counts.jsonl"
    for line in counts_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        counts[record["model"]] = record
    rows = []
    for p in list_presets():
        record = counts.get(p["name"])
        size = "10 s" if p["modality"] == "speech" else "128 tokens"
        params = f"{record['params']:,}" if record else ""
        macs = f"{record['macs'] / 1e9:,.2f} at {size}" if record else ""
        rows.append([f"`{p['name']}`", p["modality"], p["checkpoint"], p["description"], params, macs])
    return table(["preset", "modality", "architecture of", "what it is", "params", "GMACs"], rows)


def tasks_table() -> str:
    return table(["task", "version", "input", "output", "metric", "protocol", "what it is"],
                 [[f"`{t['name']}`", t["version"], t["input"],
                   f"{t['labels']} labels" if t["output"] == "label" else t["output"], t["metric"], t["protocol"],
                   t["description"]] for t in list_tasks()])


def runtimes_table() -> str:
    return table(["runtime", "extra to install", "what it is"],
                 [[f"`{r['name']}`", f"`compbench[{r['extra']}]`" if r["extra"] else "", r["description"]]
                  for r in list_runtimes()])


def cli_help() -> str:
    """``compbench COMMAND --help`` for every command, as the parser prints it."""
    import argparse

    from compbench.cli.main import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sections = []
    for name, command in commands.choices.items():
        command.prog = f"compbench {name}"
        sections.append(f"## `compbench {name}`\n\n```text\n{command.format_help().rstrip()}\n```")
    return "\n\n".join(sections)


def landscape_tables(results: str) -> str:
    """The tables of ``compbench report`` for a results file of the repository, one per model and input size."""
    from compbench.report import landscape_frame, load_landscape, markdown_tables

    return markdown_tables(landscape_frame(load_landscape([REPOSITORY / results])), level=3)


RESULT_TABLES: dict[str, Callable[[str], str]] = {"landscape": landscape_tables}  # NAME and a results file

TABLES: dict[str, Callable[[], str]] = {
    "compressors": compressors_table,
    "compressor-options": compressor_options,
    "record-fields": lambda: fields_table(Record),
    "latency-fields": lambda: fields_table(LatencyMs),
    "environment-fields": lambda: fields_table(Environment),
    "presets": presets_table,
    "tasks": tasks_table,
    "runtimes": runtimes_table,
    "cli": cli_help,
}


def render(markdown: str) -> str:
    """``markdown`` with every marker replaced by its table; an unknown marker is an error."""
    def replace(match: re.Match) -> str:
        name, argument = match.group(1), match.group(2)
        if argument is not None and name in RESULT_TABLES:
            return RESULT_TABLES[name](argument)
        if argument is None and name in TABLES:
            return TABLES[name]()
        given = name if argument is None else f"{name} {argument}"
        raise KeyError(f"unknown compbench table {given!r}; known: {', '.join(sorted(TABLES))}, and "
                       f"{', '.join(f'{n} FILE' for n in sorted(RESULT_TABLES))}")
    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return render(markdown)


def on_files(files: Files, config) -> Files:
    """The reference results' charts, served at ``results/...`` as the repository holds them."""
    for chart in sorted((REPOSITORY / "results").rglob("*.png")):
        uri = chart.relative_to(REPOSITORY).as_posix()
        files.append(File(uri, str(REPOSITORY), config["site_dir"], config["use_directory_urls"]))
    return files
