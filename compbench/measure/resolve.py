"""Stage 1, resolve: check every setting and settle what the run measures (device, threads, runtimes, the
task) before any model loads, so bad input fails fast; and, per model once loaded, its input sizes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace

import torch

from compbench.architectures.families import InputSpec
from compbench.compression.pipeline import Step, check_device, check_runtimes_served, check_task_given
from compbench.compression.spec import spec_label
from compbench.compressors import COMPRESSORS  # the package: every built-in compressor registered
from compbench.environment import environment
from compbench.errors import CompbenchError, InvalidInputError
from compbench.measure.options import MeasureOptions, ProgressCallback
from compbench.models import LoadedModel
from compbench.models.loading import model_modality
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
    notes: dict[str, list[str]] = field(default_factory=dict)  # model -> warnings its records carry
    labels: dict[str, str] = field(default_factory=dict)  # model -> its --label

    @property
    def models(self) -> list[str]:
        """The models asked for, in order (each once: :func:`resolve` refuses a repeat)."""
        return list(self.options.models)


def resolve(options: MeasureOptions, progress: ProgressCallback) -> Run:
    """Check ``options`` and settle the run; raises before any model loads."""
    if not options.models:
        raise InvalidInputError("give at least one --model")
    check_no_repeats(options)
    labels = labels_by_model(options)
    options = with_baseline_first(options)
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
    check_steps_per_example(pipelines, options.per_example)
    if task is not None:
        resolve_data_root(options.data_root)  # a missing data root fails before any model loads
    return Run(options, progress, device, threads, runtimes, task, run_id, env, unused_sizes(options), labels)


def check_steps_per_example(pipelines: list[list[Step]], per_example: bool) -> None:
    """Before any model loads: per-example timing (eager PyTorch) cannot time a step whose variants run only
    under another runtime (ort_int8). (A step whose variants' cost depends on the input, early exit, learns
    from task data, so it is refused without --task before this.)"""
    for steps in pipelines:
        for step in steps:
            runtimes = COMPRESSORS.get(step.name).runtimes
            if per_example and runtimes is not None and "eager" not in runtimes:
                raise InvalidInputError(f"--per-example times eager PyTorch, and an {step.name} variant runs only "
                                        f"under {', '.join(runtimes)}: measure it without --per-example")


def labels_by_model(options: MeasureOptions) -> dict[str, str]:
    """``--label``: the i-th names the i-th ``--model``, or every one is ``MODEL=NAME`` (as ``compbench report``
    takes them) for a ``--model`` or the ``--baseline``; at most one each, none empty, no two alike (rows with one
    label would be read as one model's)."""
    named = [*options.models, *([options.baseline] if options.baseline else [])]
    mapped = [label.partition("=") for label in options.labels]
    by_name = [label for label in mapped if label[1] and label[0].strip() in named]
    if by_name and len(by_name) < len(mapped):
        raise InvalidInputError("give every --label as NAME (the --model of its place) or every one as MODEL=NAME, "
                                "not some of each")
    if by_name:
        models = [model.strip() for model, _, _ in by_name]
        twice = next((model for model in models if models.count(model) > 1), None)
        if twice is not None:
            raise InvalidInputError(f"{twice} has two --label: give each model one")
        labels = [label.strip() for _, _, label in by_name]
        pairs = list(zip(models, labels, strict=True))
    else:
        labels = [label.strip() for label in options.labels]
        pairs = list(zip(options.models, labels, strict=False))
    if len(labels) > len(options.models) and not by_name:
        raise InvalidInputError(f"{len(labels)} --label for {len(options.models)} --model: each --label names the "
                                "--model of its place, in order")
    if any(not label for label in labels):
        raise InvalidInputError("a --label is empty: give the words the model is shown by")
    repeated = next((label for label in labels if labels.count(label) > 1), None)
    if repeated is not None:
        raise InvalidInputError(f"--label {repeated!r} is given twice: each model needs its own")
    return dict(pairs)


def with_baseline_first(options: MeasureOptions) -> MeasureOptions:
    """``options`` with its ``--baseline`` model measured first (added where ``--model`` did not name it), checked:
    at least one other model, and every other model of the baseline's modality (a speedup compares the same input)."""
    baseline = options.baseline
    if baseline is None:
        return options
    others = [name for name in options.models if name != baseline]
    if not others:
        raise InvalidInputError(f"--baseline {baseline} compares the other models of the run with it: give at least "
                                "one --model besides it")
    try:
        modality = model_modality(baseline)
    except CompbenchError:
        modality = None  # a hub id offline: loading it says why
    for name in others:
        try:
            other = model_modality(name)
        except CompbenchError:
            continue
        if modality is not None and other != modality:
            raise InvalidInputError(f"--baseline {baseline} is a {modality} model and {name} a {other} model: a "
                                    "speedup compares models on the same input; give a baseline of their modality")
    return replace(options, models=(baseline, *others))


REPEATABLE = {"--model": "models", "--seconds": "seconds", "--tokens": "tokens", "--runtime": "runtimes"}


def check_no_repeats(options: MeasureOptions) -> None:
    """Each model, size, runtime and pipeline once: the same one twice would be measured twice (as a sweep
    file refuses a repeat, so does measure)."""
    for flag, name in REPEATABLE.items():
        values = list(getattr(options, name) or ())
        repeated = next((value for value in values if values.count(value) > 1), None)
        if repeated is not None:
            shown = f"{repeated:g}" if isinstance(repeated, int | float) else repeated
            raise InvalidInputError(f"{flag} {shown} is given twice: give each once")

    def pipeline(steps) -> tuple:
        return tuple((step.name, step.amount, json.dumps(step.options, sort_keys=True)) for step in steps)

    pipelines = [pipeline(steps) for steps in options.compress]
    repeated = next((steps for steps, key in zip(options.compress, pipelines, strict=True)
                     if pipelines.count(key) > 1), None)
    if repeated is not None:
        raise InvalidInputError(f"--compress {spec_label(list(repeated))} is given twice (with the same options): "
                                "give each pipeline once")


SIZE_FLAGS = {"speech": "--seconds", "text": "--tokens"}


def unused_sizes(options: MeasureOptions) -> dict[str, list[str]]:
    """Refuse a size flag that no model of the run uses (``--seconds`` with text models only); where some
    models use it and the others were given no size of their own, a warning for the records of those others:
    they are measured at the default size. Models whose modality cannot be read before loading (a hub id
    offline) are left out of the check; loading them says why."""
    modalities = {}
    for name in options.models:
        try:
            modalities[name] = model_modality(name)
        except CompbenchError:
            continue
    notes: dict[str, list[str]] = {}
    for modality, flag in SIZE_FLAGS.items():
        if (options.seconds if modality == "speech" else options.tokens) is None:
            continue
        others = [name for name, kind in modalities.items() if kind != modality]
        other = "text" if modality == "speech" else "speech"
        if len(others) == len(options.models):
            raise InvalidInputError(
                f"{flag} sets the input sizes of {modality} models, and no model of this run is one "
                f"({', '.join(f'{name}: {modalities[name]}' for name in others)}): give {SIZE_FLAGS[other]}")
        if (options.tokens if other == "text" else options.seconds) is None:
            default = " ".join(f"{size:g}" for size in options.sizes(other))
            for name in others:
                notes.setdefault(name, []).append(f"{flag} sets {modality} models' sizes, not this {other} model's: "
                                                  f"measured at the default {SIZE_FLAGS[other]} {default}")
    return notes


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
    sizes = options.sizes(modality)
    if not sizes:
        flag = "--seconds" if modality == "speech" else "--tokens"
        raise InvalidInputError(f"{loaded.name} is a {modality} model: give at least one {flag}")
    specs = [InputSpec(modality, float(size), options.batch) for size in sizes]
    for spec in specs:
        loaded.adapter.check_input(spec)
    return specs
