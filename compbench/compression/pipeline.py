"""Compression pipelines: steps checked before anything runs, then applied in order.

Every step's input is the previous step's variant; the pipeline's input model is every step's
teacher (a distillation step learns from it). Checks that refuse a pipeline before any model
loads live here too: a step that needs task data without a task, a variant that runs under none
of the runtimes asked for, a variant that cannot run on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from compbench.compression.compressor import COMPRESSORS, Variant
from compbench.compression.context import NO_CONTEXT, CompressionContext
from compbench.errors import InvalidInputError


@dataclass(frozen=True)
class Step:
    """One step of a compression pipeline."""

    name: str
    amount: float | None = None
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "amount": self.amount, "options": dict(self.options)}


def check_pipeline(steps: list[Step]) -> list[Step]:
    """Validate every step (names, amounts, options) before anything runs."""
    if not steps:
        raise InvalidInputError("a compression pipeline needs at least one step")
    checked = []
    for step in steps:
        compressor = COMPRESSORS.get(step.name)  # unknown names: an error with near matches
        checked.append(Step(step.name, compressor.check_amount(step.amount),
                            compressor.check_options(step.options)))
    return checked


def apply_pipeline(model: nn.Module, steps: list[Step], context: CompressionContext = NO_CONTEXT) -> Variant:
    """Apply the steps in order; the input model is left unchanged and is every step's teacher."""
    manifest: list[dict] = []
    current = model
    context = context.with_teacher(model)
    checked = check_pipeline(steps)
    for step in checked:  # a step that needs data fails before any step runs
        COMPRESSORS.get(step.name).check_context(step.options, context)
    for step in checked:
        variant = COMPRESSORS.get(step.name)(current, step.amount, step.options, context)
        current = variant.model
        manifest.extend(variant.manifest)
    return Variant(current, manifest)


def steps_needing_task(steps: list[Step]) -> list[str]:
    """Labels of the (checked) steps that cannot run without task data."""
    return [COMPRESSORS.get(step.name).task_label(step.options) for step in steps
            if COMPRESSORS.get(step.name).needs_task(step.options)]


def check_task_given(pipelines: list[list[Step]], task: str | None) -> None:
    """Fail before any model loads when a pipeline needs task data and no task was given."""
    needing = [label for steps in pipelines for label in steps_needing_task(steps)]
    if needing and task is None:
        NO_CONTEXT.require_data(needing[0])


def check_device(pipelines: list[list[Step]], device: torch.device) -> None:
    """Fail before any model loads when a (checked) step's variants cannot run on ``device``."""
    for steps in pipelines:
        for step in steps:
            COMPRESSORS.get(step.name).check_device(step.options, device)


def excluded_runtimes(step_names: list[str], runtimes: list[str]) -> dict[str, str]:
    """Of ``runtimes``, each one a variant made by these steps cannot run under, with the step that rules it out."""
    excluded = {}
    for name in step_names:
        allowed = COMPRESSORS.get(name).runtimes
        for runtime in runtimes:
            if allowed is not None and runtime not in allowed:
                excluded.setdefault(runtime, name)
    return excluded


def runtimes_phrase(step_name: str) -> str:
    """The runtimes a restricted compressor's variants run under, as a message says them: ``eager or compile``."""
    return " or ".join(COMPRESSORS.get(step_name).runtimes)


def check_runtimes_served(step_names: list[str], runtimes: list[str]) -> None:
    """One clear error when a variant made by these steps runs under none of ``runtimes``."""
    excluded = excluded_runtimes(step_names, runtimes)
    if runtimes and len(excluded) == len(runtimes):
        step = excluded[runtimes[0]]
        raise InvalidInputError(f"{step} variants run only under the runtime {runtimes_phrase(step)}, not "
                                f"{', '.join(runtimes)}: add that runtime")
