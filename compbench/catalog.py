"""What compbench knows, as plain data: the model presets, the registered compressors with their declared
options, the shipped tasks and the runtimes. ``compbench ls`` prints it; the documentation's reference
pages are generated from it, so neither can drift from the code."""

from __future__ import annotations

from compbench.architectures.presets import PRESETS
from compbench.compressors import COMPRESSORS
from compbench.errors import CompbenchError
from compbench.runtimes import RUNTIMES
from compbench.tasks import find_task, task_files


def list_presets() -> list[dict]:
    """Every model preset with its modality, source checkpoint and description."""
    return [{"name": p.name, "modality": p.modality, "checkpoint": p.checkpoint,
             "description": p.description} for _, p in PRESETS.items()]


def task_data_use(compressor) -> str:
    """``none``, ``optional`` (uses ``--task`` data when given) or ``required`` (with its default options)."""
    if not compressor.uses_context:
        return "none"
    return "required" if compressor.needs_task(compressor.check_options({})) else "optional"


def list_compressors() -> list[dict]:
    """Every compressor with whether it takes an amount, whether it uses task data, the runtimes its variants
    run under (None: all) and its options."""
    return [{"name": c.name, "takes_amount": c.takes_amount, "task_data": task_data_use(c),
             "runtimes": list(c.runtimes) if c.runtimes else None, "description": c.description,
             "options": {name: {"type": o.type_name,
                                "default": o.default, "choices": list(o.choices) if o.choices else None,
                                "help": o.help} for name, o in c.options.items()}}
            for _, c in COMPRESSORS.items()]


def list_tasks() -> list[dict]:
    """Every shipped task (each file is validated as it is listed)."""
    tasks = [find_task(name) for name in task_files()]
    return [{"name": t.name, "version": t.version, "input": t.input, "output": t.output, "labels": len(t.labels),
             "metric": t.metric, "protocol": t.protocol, "description": t.description} for t in tasks]


def list_runtimes() -> list[dict]:
    """Every runtime (``--runtime``), with the pip extra it needs and whether that is installed here."""
    rows = []
    for name, runtime in RUNTIMES.items():
        try:
            version, available = runtime.version(), True
        except CompbenchError:
            version, available = None, False
        rows.append({"name": name, "description": runtime.description, "extra": runtime.extra,
                     "available": available, "version": version})
    return rows
