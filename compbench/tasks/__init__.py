"""Declarative tasks: versioned YAML files in ``tasks/``, checked against a schema at load."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from compbench.errors import InvalidInputError, UnknownNameError
from compbench.tasks.data import DATA_ROOT_ENV, Examples, MissingDataError, load_split, resolve_data_root
from compbench.tasks.schema import Task, load_task_file

TASKS_DIR_ENV = "COMPBENCH_TASKS_DIR"

__all__ = ["DATA_ROOT_ENV", "Examples", "MissingDataError", "Task", "find_task", "load_split", "load_task_file",
           "resolve_data_root", "task_files", "tasks_dir"]


def tasks_dir() -> Path:
    """``$COMPBENCH_TASKS_DIR``, else the ``tasks/`` folder shipped with compbench.

    The shipped folder is the package ``compbench.task_files`` (the checkout's ``tasks/`` in an
    editable install, a folder in site-packages otherwise). It has no ``__init__.py``, so it is a
    namespace package: ``importlib.resources.files`` returns a ``MultiplexedPath`` for it whose
    ``str()`` is no path, hence the module spec's search locations are used instead."""
    if os.environ.get(TASKS_DIR_ENV):
        return Path(os.environ[TASKS_DIR_ENV])
    spec = importlib.util.find_spec("compbench.task_files")
    locations = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    found = [path for path in locations if path.is_dir()]
    checkout = Path(__file__).resolve().parents[2]  # running from a source tree that was never installed
    if not found and (checkout / "pyproject.toml").is_file() and (checkout / "tasks").is_dir():
        found = [checkout / "tasks"]
    if not found:
        raise InvalidInputError("compbench's task files are missing from this installation "
                                "(package compbench.task_files); reinstall compbench or set $COMPBENCH_TASKS_DIR")
    return found[0]


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
        raise InvalidInputError(f"{files[name]}: its name is {task.name!r}, but the file is named {name!r}")
    return task
