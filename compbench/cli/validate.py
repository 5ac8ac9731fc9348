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
        entry = {"task": task.name, "version": task.version, "input": task.input, "output": task.output,
                 "labels": len(task.labels), "file": task.file}
        if check_data:
            entry["examples"] = {split: len(load_split(task, split, data_root)) for split in task_splits(task)}
        report.append(entry)
    return report


def task_splits(task: Task) -> list[str]:
    """The splits ``task``'s source defines."""
    source = task.source
    if source.kind == "csv":
        return list(source.files)
    if source.kind == "concatenated_clips":
        return list(source.utterances)
    if source.kind == "librispeech":
        return list(source.splits)
    if source.kind == "hf_dataset":
        return list(source.splits) or ["train", "test"]
    return list(source.split_ranges) or ["train", "test"]


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="check task files against the schema",
                            description="Validate task YAML files (all shipped tasks by default).")
    p.add_argument("tasks", nargs="*", metavar="TASK", help="task names or task files")
    p.add_argument("--data", action="store_true", help="also load every split and count its examples")
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")


def run(args: argparse.Namespace) -> int:
    for entry in validate_tasks(args.tasks, args.data_root, args.data):
        counts = "".join(f" {split}={n}" for split, n in entry.get("examples", {}).items())
        kind = f"{entry['labels']} labels" if entry["output"] == "label" else "transcripts"
        print(f"ok {entry['task']} v{entry['version']} ({entry['input']}, {kind}){counts}")
    return 0
