"""Terminal tables that fit the terminal.

Every cell and title is plain text, never rich markup (``compbench[onnx]`` stays as written). A table takes the
terminal's width (``$COLUMNS`` where set; :data:`WIDE_OUTPUT` when the output is not a terminal, so a file
keeps every column). Columns of words (descriptions, options, variant labels) wrap within themselves; where
the columns still do not fit, the least important are left out, one at a time in the order each table states
(:attr:`Column.drop`), and a line under the table names them. A row is never folded into pieces by the
terminal."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

WIDE_OUTPUT = 200  # the width when the output is not a terminal and $COLUMNS is not set
NARROWEST_WRAPPED = 16  # a column of words wraps down to this many characters, no fewer
EDGES = 3  # the characters each column adds to a row: a space either side and a border


@dataclass(frozen=True)
class Column:
    """One column: its header, numbers (right-aligned) or words that may wrap, and when it is left out: 0 never,
    else in increasing order (1 first) while the table is wider than the terminal."""

    name: str
    right: bool = False
    wraps: bool = False
    drop: int = 0


def output_width() -> int:
    """The terminal's width ($COLUMNS where set), or :data:`WIDE_OUTPUT` where the output is not a terminal."""
    return shutil.get_terminal_size((WIDE_OUTPUT, 24)).columns


def console(file, width: int) -> Console:
    """A console that writes plain text (no colour codes, no markup) ``width`` characters wide."""
    return Console(file=file, width=width, force_terminal=False, color_system=None, highlight=False,
                   markup=False, emoji=False)


def _natural(column: Column, cells: list[str]) -> int:
    """The width ``column`` needs: its longest line, or where its words wrap, down to its longest word (and no
    narrower than :data:`NARROWEST_WRAPPED` where a line is longer)."""
    lines = [column.name] + [line for cell in cells for line in cell.split("\n")]
    widest = max(map(len, lines))
    if not column.wraps:
        return widest
    longest_word = max(len(word) for line in lines for word in line.split() or [""])
    return max(min(widest, NARROWEST_WRAPPED), longest_word)


def fitted_table(title: str, columns: Sequence[Column], rows: Iterable[Sequence], width: int
                 ) -> tuple[Table, list[str]]:
    """A table of ``rows`` (cells as text; None is blank) no wider than ``width``, and the names of the columns
    left out to get there (in the order they were dropped)."""
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    natural = [_natural(column, [row[index] for row in cells]) for index, column in enumerate(columns)]
    kept = list(range(len(columns)))
    left_out = []
    for index in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: columns[i].drop):
        if 1 + sum(natural[i] + EDGES for i in kept) <= width:
            break
        kept.remove(index)
        left_out.append(columns[index].name)
    table = Table(title=Text(title), title_justify="left")
    for index in kept:
        column = columns[index]
        table.add_column(Text(column.name), justify="right" if column.right else "left",
                         no_wrap=not column.wraps, overflow="fold")
    for row in cells:
        table.add_row(*(Text(row[index]) for index in kept))
    return table, left_out


def print_table(out: Console, title: str, columns: Sequence[Column], rows: Iterable[Sequence]) -> None:
    """:func:`fitted_table` at ``out``'s width, then a line naming the columns left out, if any."""
    table, left_out = fitted_table(title, columns, rows, out.width)
    out.print(table)
    if left_out:
        out.print(Text(f"(left out at {out.width} columns: {', '.join(left_out)}; a wider terminal, "
                       "COLUMNS=N or --format json shows them)"))
