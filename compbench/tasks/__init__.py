"""Declarative tasks: versioned YAML files in ``tasks/``, checked against a schema at load."""

from __future__ import annotations

import os
from pathlib import Path

from compbench.errors import UnknownNameError
from compbench.tasks.data import DATA_ROOT_ENV, Examples, MissingDataError, load_split, resolve_data_root
from compbench.tasks.schema import Task, load_task_file

TASKS_DIR_ENV = "COMPBENCH_TASKS_DIR"

__all__ = ["DATA_ROOT_ENV", "Examples", "MissingDataError", "Task", "find_task", "load_split", "load_task_file",
           "resolve_data_root", "task_files", "tasks_dir"]


def tasks_dir() -> Path:
    """``$COMPBENCH_TASKS_DIR``, else the ``tasks/`` folder shipped with compbench."""
    if os.environ.get(TASKS_DIR_ENV):
        return Path(os.environ[TASKS_DIR_ENV])
    checkout = Path(__file__).resolve().parent.parent.parent / "tasks"
    if checkout.is_dir():
        return checkout
    from importlib.resources import files

    return Path(str(files("compbench.task_files")))


def task_files() -> dict[str, Path]:
    """Task name (the file's stem) -> file."""
    return {path.stem: path for path in sorted(tasks_dir().glob("*.yaml"))}


def find_task(name: str) -> Task:
    """A task by name, or a path to a task file; unknown names list the close ones."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return load_task_file(name)
    files = task_files()
    if name not in files:
        raise UnknownNameError("task", name, files)
    task = load_task_file(files[name])
    if task.name != name:
        from compbench.errors import InvalidInputError

        raise InvalidInputError(f"{files[name]}: its name is {task.name!r}, but the file is named {name!r}")
    return task
