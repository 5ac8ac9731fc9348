"""``compbench validate``: check task files against the schema (and, with --data, their data)."""

from __future__ import annotations

import argparse

from compbench.tasks import find_task, load_split, task_files
from compbench.tasks.schema import Task


def validate_tasks(names: list[str] | None = None, data_root: str | None = None,
                   check_data: bool = False) -> list[dict]:
    """Load each task (all shipped ones by default); with ``check_data`` also count its examples.

    Raises on the first invalid task with a message naming the file and key."""
    report = []
    for name in names or list(task_files()):
        task: Task = find_task(name)
        entry = {"task": task.name, "version": task.version, "input": task.input, "labels": len(task.labels),
                 "file": task.file}
        if check_data:
            splits = task.source.files if task.source.kind == "csv" else (
                task.source.split_ranges or {"train": None, "test": None})
            entry["examples"] = {split: len(load_split(task, split, data_root)) for split in splits}
        report.append(entry)
    return report


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="check task files against the schema",
                            description="Validate task YAML files (all shipped tasks by default).")
    p.add_argument("tasks", nargs="*", metavar="TASK", help="task names or task files")
    p.add_argument("--data", action="store_true", help="also load every split and count its examples")
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    for entry in validate_tasks(args.tasks, args.data_root, args.data):
        counts = "".join(f" {split}={n}" for split, n in entry.get("examples", {}).items())
        print(f"ok {entry['task']} v{entry['version']} ({entry['input']}, {entry['labels']} labels){counts}")
    return 0
