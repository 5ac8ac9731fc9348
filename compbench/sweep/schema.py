"""The sweep file schema (version 1), written down as types and checked strictly.

A sweep file is YAML read with ``yaml.safe_load``. It declares models, input sizes, an optional
task, compressors with lists of amounts and their options, explicit pipelines and measurement
settings. Everything is checked before any job runs: unknown keys, wrong types, unknown models,
compressors, options or tasks, and amounts out of range are errors that name the file and the
key (``quick.yaml: compressors.head_pruning.amounts[1]: ...``).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from compbench.architectures.families import FAMILIES, InputSpec, check_input
from compbench.checks import check_choice, check_document, check_keys, check_type, load_yaml_file
from compbench.compression.pipeline import check_pipeline, check_runtimes_served
from compbench.compression.spec import parse_step
from compbench.compressors import COMPRESSORS, Step
from compbench.errors import CompbenchError, InvalidInputError
from compbench.measure import DEFAULT_SECONDS, DEFAULT_TOKENS
from compbench.models.loading import ATTN_IMPLEMENTATIONS, WEIGHTS, model_config, model_modality, model_source
from compbench.quality.finetune import FinetuneOptions, resolved_options
from compbench.runtimes import RUNTIMES
from compbench.tasks import find_task
from compbench.tasks.schema import MODALITY_OF_INPUT
from compbench.timing.device import DEVICES
from compbench.timing.wallclock import TimingPolicy

SWEEP_SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# fine-tuning options a sweep may set, with their types (the data root is a machine setting, not part of a sweep)
_FINETUNE_TYPES = {name: hint for name, hint in get_type_hints(FinetuneOptions).items()
                   if name not in ("data_root", "weights")}  # the entry's own weights say where training starts


@dataclass(frozen=True)
class ModelEntry:
    """One model of the sweep: a preset, hub id or directory, optionally fine-tuned first."""

    model: str
    weights: str | None = None  # None: random for presets, pretrained for checkpoints
    finetune: str | None = None  # a task: fine-tune on it first (cached by key), then measure that
    finetune_options: dict = field(default_factory=dict)  # FinetuneOptions fields
    task: str | None = None  # overrides the sweep's task for this model
    task_set: bool = False  # whether ``task`` was written (``task: null`` turns quality off)
    label: str | None = None  # what the model is, in words, on its records (not part of a job's key)
    compress: bool = True  # False: only the dense model is measured (a published model beside a baseline's variants)

    def describe(self) -> dict:
        """The entry as it identifies jobs (canonical: defaults resolved; its label is not a setting of a job)."""
        weights = self.weights or ("pretrained" if model_source(self.model) != "preset" or self.finetune_modality()
                                   == "text" else "random")
        entry: dict[str, Any] = {"model": self.model, "weights": weights}
        if self.finetune:
            entry["finetune"] = {"task": self.finetune, "options": self.full_finetune_options()}
        return entry

    def finetune_modality(self) -> str | None:
        return MODALITY_OF_INPUT[find_task(self.finetune).input] if self.finetune else None

    def full_finetune_options(self) -> dict:
        given = FinetuneOptions(**{name: self.finetune_options[name] for name in _FINETUNE_TYPES
                                   if name in self.finetune_options})
        resolved = asdict(resolved_options(given, self.finetune_modality(), find_task(self.finetune).output))
        return {name: resolved[name] for name in _FINETUNE_TYPES}


@dataclass(frozen=True)
class Sizes:
    seconds: tuple[float, ...] = DEFAULT_SECONDS
    tokens: tuple[int, ...] = DEFAULT_TOKENS
    batch: int = 1


@dataclass(frozen=True)
class CompressorEntry:
    """A compressor at each of its amounts (one ``None`` for a compressor that takes no amount)."""

    name: str
    amounts: tuple[float | None, ...]
    options: dict


@dataclass(frozen=True)
class MeasureSettings:
    """How every job measures; the same fields as ``compbench measure``'s flags."""

    latency: bool = True
    memory: bool = True
    threads: int | None = None  # None: OMP_NUM_THREADS where set, else every core of the machine that runs the job
    device: str = "cpu"
    budget: float = TimingPolicy.budget_s
    rel_ci: float = TimingPolicy.rel_ci
    max_runs: int = TimingPolicy.max_runs  # at most this many lock-step rounds per job
    attn: str = "sdpa"
    steady_allocator: bool = True
    seed: int = 0
    task_limit: int | None = None
    runtimes: tuple[str, ...] = ("eager",)  # each sized model is timed under each

    def timing_policy(self) -> TimingPolicy:
        return TimingPolicy(budget_s=self.budget, rel_ci=self.rel_ci, max_runs=self.max_runs)

    def describe(self) -> dict:
        """The settings as they identify jobs; eager alone (the default) is left out, so jobs keyed before
        runtimes existed keep their keys."""
        described = asdict(self)
        if self.runtimes == ("eager",):
            del described["runtimes"]
        else:
            described["runtimes"] = list(self.runtimes)
        return described


@dataclass(frozen=True)
class Sweep:
    name: str
    models: tuple[ModelEntry, ...]
    sizes: Sizes
    compressors: tuple[CompressorEntry, ...]
    pipelines: tuple[tuple[Step, ...], ...]
    measure: MeasureSettings
    task: str | None = None
    description: str = ""
    file: str = ""
    baseline: ModelEntry | None = None  # every other model of its modality is compared with it (measure --baseline)


_TOP_KEYS = {"version": (int, True), "name": (str, True), "description": (str, False), "models": (list, True),
             "sizes": (dict, False), "task": (str, False), "compressors": (dict, False),
             "pipelines": (list, False), "measure": (dict, False), "baseline": (str, False)}
_MODEL_KEYS = {"model": (str, True), "weights": (str, False), "finetune": (str, False),
               "finetune_options": (dict, False), "task": ((str, type(None)), False), "label": (str, False),
               "compress": (bool, False)}
_SIZE_KEYS = {"seconds": (list, False), "tokens": (list, False), "batch": (int, False)}
_COMPRESSOR_KEYS = {"amounts": (list, False), "options": (dict, False)}
_STEP_KEYS = {"name": (str, True), "amount": ((int, float, type(None)), False), "options": (dict, False)}
_MEASURE_KEYS = {"latency": (bool, False), "memory": (bool, False), "threads": (int, False), "device": (str, False),
                 "budget": (float, False), "rel_ci": (float, False), "max_runs": (int, False), "attn": (str, False),
                 "steady_allocator": (bool, False), "seed": (int, False), "task_limit": (int, False),
                 "runtimes": (list, False)}


def _rethrow(where: str, err: CompbenchError) -> InvalidInputError:
    return InvalidInputError(f"{where}: {err}")


def _task(where: str, name: str):
    try:
        return find_task(name)
    except CompbenchError as err:
        raise _rethrow(where, err) from None


def _model_entry(where: str, data: Any) -> ModelEntry:
    if isinstance(data, str):
        data = {"model": data}
    check_type(where, data, (str, dict))
    check_keys(where, data, _MODEL_KEYS)
    try:
        model_source(data["model"])
    except CompbenchError as err:
        raise _rethrow(f"{where}.model", err) from None
    if "weights" in data:
        check_choice(where, "weights", data["weights"], WEIGHTS)
    finetune, options = data.get("finetune"), data.get("finetune_options", {})
    if options and not finetune:
        raise InvalidInputError(f"{where}: 'finetune_options' needs 'finetune: TASK'")
    if finetune:
        task = _task(f"{where}.finetune", finetune)
        try:
            modality = model_modality(data["model"])
        except CompbenchError:
            modality = None  # a model that cannot be resolved now fails as its own job
        if modality is not None and MODALITY_OF_INPUT[task.input] != modality:
            raise InvalidInputError(f"{where}.finetune: task {task.name} takes {task.input}; {data['model']} is a "
                                    f"{modality} model")
        if task.input == "text" and data.get("weights") == "random":
            raise InvalidInputError(f"{where}: 'finetune' on a text task starts from pretrained weights; drop "
                                    "'weights: random'")
        check_keys(f"{where}.finetune_options", options, {name: (t, False) for name, t in _FINETUNE_TYPES.items()})
    if data.get("task") is not None:
        _task(f"{where}.task", data["task"])
    label = data.get("label")
    if label is not None and not label.strip():
        raise InvalidInputError(f"{where}.label is empty: give the words the model is shown by")
    return ModelEntry(model=data["model"], weights=data.get("weights"), finetune=finetune,
                      finetune_options=dict(options), task=data.get("task"), task_set="task" in data,
                      label=label.strip() if label else None, compress=data.get("compress", True))


def _number_list(where: str, values: list, kind: type) -> tuple:
    if not values:
        raise InvalidInputError(f"{where}: give at least one value")
    for index, value in enumerate(values):
        check_type(f"{where}[{index}]", value, kind)
        if not math.isfinite(value) or value <= 0:
            raise InvalidInputError(f"{where}[{index}]: must be a finite number > 0, got {value!r}")
    if len(set(values)) != len(values):
        raise InvalidInputError(f"{where}: values are listed twice: {values}")
    return tuple(kind(v) for v in values)


def _sizes(where: str, data: dict) -> Sizes:
    check_keys(where, data, _SIZE_KEYS)
    seconds = _number_list(f"{where}.seconds", data["seconds"], float) if "seconds" in data else DEFAULT_SECONDS
    tokens = _number_list(f"{where}.tokens", data["tokens"], int) if "tokens" in data else DEFAULT_TOKENS
    batch = data.get("batch", 1)
    if batch < 1:
        raise InvalidInputError(f"{where}.batch: must be >= 1, got {batch}")
    return Sizes(seconds=seconds, tokens=tokens, batch=batch)


def _check_sizes_fit(where: str, label: str, model: str, sizes: Sizes) -> None:
    """Every size of the model's modality within what the model takes (maximum positions) and this machine's
    memory allows, when the file is read; a model whose config cannot be read now fails as its own job."""
    try:
        config = model_config(model)
    except CompbenchError:
        return
    modality = FAMILIES.get(config.model_type).modality
    key, values = ("seconds", sizes.seconds) if modality == "speech" else ("tokens", sizes.tokens)
    for index, value in enumerate(values):
        try:
            check_input(config, modality, InputSpec(modality, float(value), sizes.batch))
        except CompbenchError as err:
            raise InvalidInputError(f"{where}.{key}[{index}] for {label}: {err}") from None


def _compressor(where: str, name: str, data: Any) -> CompressorEntry:
    try:
        compressor = COMPRESSORS.get(name)
    except CompbenchError as err:
        raise _rethrow(where, err) from None
    data = {} if data is None else data
    check_type(where, data, dict)
    check_keys(where, data, _COMPRESSOR_KEYS)
    try:
        options = compressor.check_options(data.get("options"))
    except CompbenchError as err:
        raise _rethrow(f"{where}.options", err) from None
    if not compressor.takes_amount:
        if "amounts" in data:
            raise InvalidInputError(f"{where}.amounts: {name} takes no amount; write `{name}: {{}}`")
        return CompressorEntry(name, (None,), options)
    if "amounts" not in data:
        raise InvalidInputError(f"{where}: missing key 'amounts' (a list of fractions in [0, 1))")
    amounts = []
    for index, amount in enumerate(data["amounts"]):
        try:
            amounts.append(compressor.check_amount(amount))
        except CompbenchError as err:
            raise _rethrow(f"{where}.amounts[{index}]", err) from None
    if not amounts:
        raise InvalidInputError(f"{where}.amounts: give at least one amount")
    if len(set(amounts)) != len(amounts):
        raise InvalidInputError(f"{where}.amounts: an amount is listed twice: {data['amounts']}")
    return CompressorEntry(name, tuple(amounts), options)


def _pipeline(where: str, data: Any, options_by_name: dict[str, dict]) -> tuple[Step, ...]:
    check_type(where, data, list)
    if not data:
        raise InvalidInputError(f"{where}: a pipeline needs at least one step")
    steps = []
    for index, entry in enumerate(data):
        at = f"{where}[{index}]"
        check_type(at, entry, (str, dict))
        try:
            if isinstance(entry, str):  # options come from the compressors section, never the string
                name = entry.partition("=")[0].strip()
                steps.append(check_pipeline([parse_step(entry, options_by_name.get(name), where=at)])[0])
            else:
                check_keys(at, entry, _STEP_KEYS)
                steps.append(check_pipeline([Step(entry["name"], entry.get("amount"), entry.get("options", {}))])[0])
        except CompbenchError as err:
            message = str(err)
            raise (err if message.startswith(at) else _rethrow(at, err)) from None
    return tuple(steps)


def _measure(where: str, data: dict) -> MeasureSettings:
    check_keys(where, data, _MEASURE_KEYS)
    if "device" in data:
        check_choice(where, "device", data["device"], DEVICES)
    if "attn" in data:
        check_choice(where, "attn", data["attn"], ATTN_IMPLEMENTATIONS)
    for key in ("threads", "task_limit"):
        if key in data and data[key] < 1:
            raise InvalidInputError(f"{where}.{key}: must be >= 1, got {data[key]}")
    if "runtimes" in data:
        if not data["runtimes"]:
            raise InvalidInputError(f"{where}.runtimes: give at least one runtime")
        for index, name in enumerate(data["runtimes"]):
            check_type(f"{where}.runtimes[{index}]", name, str)
            try:
                RUNTIMES.get(name)
            except CompbenchError as err:
                raise _rethrow(f"{where}.runtimes[{index}]", err) from None
        data = {**data, "runtimes": tuple(dict.fromkeys(data["runtimes"]))}
        if data["runtimes"] != ("eager",) and data.get("latency") is False:
            raise InvalidInputError(f"{where}.runtimes: runtimes matter only for latency; 'latency: false' times "
                                    "nothing")
    settings = MeasureSettings(**{key: float(v) if key in ("budget", "rel_ci") else v for key, v in data.items()})
    for field_name, problem in settings.timing_policy().problems().items():
        key = "budget" if field_name == "budget_s" else field_name
        raise InvalidInputError(f"{where}.{key}: {problem}")
    return settings


def _refuse_repeated_variants(where: str, compressors: tuple[CompressorEntry, ...],
                              pipelines: tuple[tuple[Step, ...], ...]) -> None:
    """Two declarations of one variant would be one job twice."""
    seen: dict[str, str] = {}
    declared = [(f"compressors.{c.name} at {a}" if a is not None else f"compressors.{c.name}",
                 (Step(c.name, a, c.options),)) for c in compressors for a in c.amounts]
    declared += [(f"pipelines[{i}]", steps) for i, steps in enumerate(pipelines)]
    for label, steps in declared:
        key = repr([s.to_dict() for s in steps])
        if key in seen:
            raise InvalidInputError(f"{where}: {label} is the same variant as {seen[key]}")
        seen[key] = label


def _refuse_unserved_variants(where: str, compressors: tuple[CompressorEntry, ...],
                              pipelines: tuple[tuple[Step, ...], ...], runtimes: tuple[str, ...]) -> None:
    """A variant that runs under none of ``measure.runtimes`` (ort_int8 without onnxruntime) is refused."""
    declared = [(f"compressors.{c.name}", [c.name]) for c in compressors]
    declared += [(f"pipelines[{i}]", [s.name for s in steps]) for i, steps in enumerate(pipelines)]
    for label, names in declared:
        try:
            check_runtimes_served(names, list(runtimes))
        except CompbenchError as err:
            raise _rethrow(f"{where}: {label}", err) from None


def sweep_from_dict(data: object, where: str) -> Sweep:
    """A validated Sweep from parsed YAML; ``where`` names the file in error messages."""
    data = check_document(where, data, "sweep file", _TOP_KEYS, "version", SWEEP_SCHEMA_VERSION)
    if not _NAME.match(data["name"]):
        raise InvalidInputError(f"{where}: 'name' must be letters, digits, '.', '_' or '-', got {data['name']!r}")
    if not data["models"]:
        raise InvalidInputError(f"{where}: 'models' must list at least one model")
    models = tuple(_model_entry(f"{where}: models[{i}]", entry) for i, entry in enumerate(data["models"]))
    seen = {}
    for index, entry in enumerate(models):
        key = repr(entry.describe())
        if key in seen:
            raise InvalidInputError(f"{where}: models[{index}] repeats models[{seen[key]}]")
        seen[key] = index
    labels = [entry.label for entry in models if entry.label]
    repeated = next((label for label in labels if labels.count(label) > 1), None)
    if repeated is not None:
        raise InvalidInputError(f"{where}: label {repeated!r} is given to two models: each needs its own")
    if data.get("task") is not None:
        _task(f"{where}: task", data["task"])
    compressors = tuple(_compressor(f"{where}: compressors.{name}", name, entry)
                        for name, entry in (data.get("compressors") or {}).items())
    options_by_name = {c.name: c.options for c in compressors}
    pipelines = tuple(_pipeline(f"{where}: pipelines[{i}]", p, options_by_name)
                      for i, p in enumerate(data.get("pipelines") or []))
    _refuse_repeated_variants(where, compressors, pipelines)
    measure = _measure(f"{where}: measure", data.get("measure") or {})
    _refuse_unserved_variants(where, compressors, pipelines, measure.runtimes)
    sizes = _sizes(f"{where}: sizes", data.get("sizes") or {})
    for index, entry in enumerate(models):
        _check_sizes_fit(f"{where}: sizes", f"models[{index}] {entry.model}", entry.model, sizes)
    return Sweep(name=data["name"], description=data.get("description", ""), models=models,
                 sizes=sizes, compressors=compressors,
                 pipelines=pipelines, measure=measure, task=data.get("task"), file=where,
                 baseline=_baseline(where, data.get("baseline"), models))


def _baseline(where: str, name: str | None, models: tuple[ModelEntry, ...]) -> ModelEntry | None:
    """The ``baseline:`` model: one of ``models`` by its ``model``, measured as it is (not fine-tuned by the sweep:
    the other models are timed beside it as it loads)."""
    if name is None:
        return None
    entries = [entry for entry in models if entry.model == name]
    if not entries:
        raise InvalidInputError(f"{where}: baseline {name!r} is not one of the sweep's models "
                                f"({', '.join(entry.model for entry in models)})")
    if len(entries) > 1 or entries[0].finetune:
        raise InvalidInputError(f"{where}: baseline {name!r} must be one model entry the sweep does not fine-tune")
    return entries[0]


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every problem is an InvalidInputError naming the file and key."""
    return sweep_from_dict(load_yaml_file(path, "sweep file"), str(path))
