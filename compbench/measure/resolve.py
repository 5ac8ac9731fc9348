"""Stage 1, resolve: check every setting and settle what the run measures (device, threads, runtimes, the
task) before any model loads, so bad input fails fast; and, per model once loaded, its input sizes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import torch

from compbench.architectures.families import InputSpec
from compbench.compression.pipeline import check_device, check_runtimes_served, check_task_given
from compbench.environment import environment
from compbench.errors import InvalidInputError
from compbench.measure.options import MeasureOptions, ProgressCallback
from compbench.models import LoadedModel
from compbench.runtimes import RUNTIMES
from compbench.tasks import Task, find_task, resolve_data_root
from compbench.timing.device import default_threads, resolve_device


@dataclass
class Run:
    """One measure run, resolved: its options and what they settle."""

    options: MeasureOptions
    progress: ProgressCallback
    device: torch.device
    threads: int
    runtimes: list[str]  # each known, in order, once each
    task: Task | None
    run_id: str  # shared by every record of the run
    environment: dict

    @property
    def models(self) -> list[str]:
        """The models asked for, in order, once each."""
        return list(dict.fromkeys(self.options.models))


def resolve(options: MeasureOptions, progress: ProgressCallback) -> Run:
    """Check ``options`` and settle the run; raises before any model loads."""
    if not options.models:
        raise InvalidInputError("give at least one --model")
    if options.batch < 1:
        raise InvalidInputError(f"--batch must be >= 1, got {options.batch}")
    device = resolve_device(options.device)
    threads = options.threads if options.threads is not None else default_threads()
    run_id = uuid.uuid4().hex
    env = environment()
    pipelines = [list(steps) for steps in options.compress]
    check_task_given(pipelines, options.task)
    runtimes = check_runtimes(options)
    check_device(pipelines, device)
    task = find_task(options.task) if options.task else None
    if options.per_example and task is None:
        raise InvalidInputError("measuring per example needs --task: the examples are its evaluation split")
    if task is not None:
        resolve_data_root(options.data_root)  # a missing data root fails before any model loads
    return Run(options, progress, device, threads, runtimes, task, run_id, env)


def check_runtimes(options: MeasureOptions) -> list[str]:
    """The runtimes asked for, each known (near-match errors), in order, once each."""
    names = list(dict.fromkeys(options.runtimes))
    if not names:
        raise InvalidInputError("give at least one --runtime")
    for name in names:
        RUNTIMES.get(name)
    if options.latency:  # where a variant is timed; its quality is evaluated where its weights live, whatever runs
        for steps in options.compress:
            check_runtimes_served([step.name for step in steps], names)
    if names != ["eager"] and not options.latency:
        raise InvalidInputError("--runtime matters only for latency (MACs and params are those of the PyTorch "
                                "model); drop --no-latency or the runtimes other than eager")
    return names


def sizes_for(loaded: LoadedModel, options: MeasureOptions) -> list[InputSpec]:
    """The input sizes ``loaded`` is measured at (seconds for speech, tokens for text), each checked against it."""
    modality = loaded.adapter.modality
    sizes = options.seconds if modality == "speech" else options.tokens
    if not sizes:
        flag = "--seconds" if modality == "speech" else "--tokens"
        raise InvalidInputError(f"{loaded.name} is a {modality} model: give at least one {flag}")
    specs = [InputSpec(modality, float(size), options.batch) for size in sizes]
    for spec in specs:
        loaded.adapter.check_input(spec)
    return specs
