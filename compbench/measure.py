"""Measure models: params, exact MACs, wall-clock, peak memory; one record per model and size.

A variant whose work depends on its input (early exit) has no cost at an input size: it is
measured per example on the task's evaluation split instead, beside the dense model on the same
examples (one record each, input kind ``examples``). MACs are counted example by example on the
real inputs (``macs`` is the mean; ``macs_per_example`` the distribution; ``exits`` where the
examples left), latency is timed example by example, interleaved with the dense model
(:mod:`compbench.timing.per_example`), and ``speedup`` is the ratio of mean latencies, as
``predicted_speedup`` is the ratio of mean MACs.

:func:`measure` is the plain public function behind ``compbench measure``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
import torch
from torch import nn

from compbench.compressors import Step, apply_pipeline
from compbench.compressors.base import (
    COMPRESSORS,
    check_runtimes_served,
    check_task_given,
    excluded_runtimes,
    runtimes_phrase,
)
from compbench.compressors.context import NO_CONTEXT, CompressionContext
from compbench.compressors.int8_dynamic import resolve_backend
from compbench.counting.audit import audit_counts
from compbench.counting.macs import MacCount, count_macs
from compbench.counting.params import ParamCount, count_params
from compbench.counting.weights import has_quantized_weights, is_input_dependent
from compbench.environment import environment
from compbench.errors import InvalidInputError
from compbench.models import SAMPLE_RATE, InputSpec, LoadedModel, ModelAdapter, load_model
from compbench.quality.context import build_context
from compbench.quality.evaluate import (
    MODALITY_OF_INPUT,
    TaskData,
    check_model_for_task,
    fidelity,
    hidden_states,
    prepare_task,
    single_example_inputs,
    task_quality,
)
from compbench.record import SCHEMA_VERSION
from compbench.runtimes import RUNTIMES, check_outputs
from compbench.runtimes.base import (
    DEFAULT_TOLERANCE,
    QUANTIZED_TOLERANCE,
    eager_output,
    onnx_quantization,
    output_difference,
)
from compbench.runtimes.onnx import served_by_onnxruntime
from compbench.tasks import find_task, resolve_data_root
from compbench.timing.allocator import allocator_state, steady_allocator
from compbench.timing.device import cpu_threads, default_threads, resolve_device
from compbench.timing.memory import measure_peak_memory
from compbench.timing.peak import GemmPeak, measure_gemm_peak
from compbench.timing.per_example import mean_ratio_ci, per_example_summary, time_per_example
from compbench.timing.stats import LatencyStats, paired_ratio_ci
from compbench.timing.wallclock import TimingPolicy, TimingTarget, time_interleaved

DEFAULT_MODELS = ("hubert-base", "bert-base")
DEFAULT_SECONDS = (10.0,)
DEFAULT_TOKENS = (128,)

# (description, fraction done) for progress displays
ProgressCallback = Callable[[str, float], None]
# (name, weights, attn_implementation, seed) -> LoadedModel; load_model unless a caller caches
ModelLoader = Callable[[str, str | None, str, int], LoadedModel]


@dataclass
class MeasureOptions:
    """Everything ``compbench measure`` can set, with its defaults."""

    models: Sequence[str] = DEFAULT_MODELS
    compress: Sequence[Sequence[Step]] = ()  # pipelines; the dense model is always measured too
    weights: str | None = None  # None: random for presets, pretrained for checkpoints
    seconds: Sequence[float] = DEFAULT_SECONDS  # input sizes for speech models
    tokens: Sequence[int] = DEFAULT_TOKENS  # input sizes for text models
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None  # None: every core this process may use
    latency: bool = True
    memory: bool = True
    audit: bool = False
    attn_implementation: str = "sdpa"
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    steady_allocator: bool = True  # see compbench.timing.allocator
    task: str | None = None  # adds quality (and, for variants, fidelity) to every record
    data_root: str | None = None
    task_limit: int | None = None  # at most this many examples per split (quick runs; recorded)
    dense_quality: bool = True  # False: skip the dense model's quality (its hidden states still feed fidelity)
    per_example: bool = False  # also measure every model example by example on the task's evaluation split
    runtimes: Sequence[str] = ("eager",)  # each sized model is timed under each (compbench.runtimes), interleaved
    seed: int = 0


@dataclass
class _Job:
    loaded: LoadedModel
    model: nn.Module  # the dense model, or a compressed variant of it
    adapter: ModelAdapter
    spec: InputSpec | None  # None: measured per example on ``examples``
    inputs: dict
    record: dict
    dense: _Job | None = None  # for a variant: the dense job it is compared with
    examples: list[dict] | None = None  # per-example jobs: one input dict per evaluation example
    runtime: str = "eager"  # what runs the model (compbench.runtimes); per-example jobs run eager
    example_macs: list[int] | None = None  # per-example jobs: each example's MACs


def _sizes_for(loaded: LoadedModel, options: MeasureOptions) -> list[InputSpec]:
    modality = loaded.adapter.modality
    sizes = options.seconds if modality == "speech" else options.tokens
    if not sizes:
        flag = "--seconds" if modality == "speech" else "--tokens"
        raise InvalidInputError(f"{loaded.name} is a {modality} model: give at least one {flag}")
    specs = [InputSpec(modality, float(size), options.batch) for size in sizes]
    for spec in specs:
        loaded.adapter.check_input(spec)
    return specs


def _compression_steps(manifest: list[dict] | None) -> list[dict] | None:
    if not manifest:
        return None
    return [{"name": s["name"], "amount": s["amount"], "options": s["options"]} for s in manifest]


def _base_record(loaded: LoadedModel, adapter: ModelAdapter, params: ParamCount, macs: MacCount,
                 described_input: dict, options: MeasureOptions, run_id: str, threads: int, env: dict,
                 manifest: list[dict] | None) -> dict:
    dtype = str(adapter.floating_dtype()).removeprefix("torch.")
    for step in manifest or []:
        dtype = step.get("dtype", dtype)  # a cast or quantization step names the weights' dtype
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": loaded.name,
        "model_source": loaded.source,
        "checkpoint": loaded.checkpoint,
        "family": loaded.model.config.model_type,
        "modality": adapter.modality,
        "weights": loaded.weights,
        "compression": _compression_steps(manifest),
        "manifest": manifest,
        "input": described_input,
        "device": options.device,
        "threads": threads,
        "attn_implementation": loaded.attn_implementation,
        "dtype": dtype,
        "params": params.total,
        "params_nonzero": params.nonzero,
        "params_by_component": params.by_component,
        "macs": macs.total,
        "macs_effective": macs.effective,
        "macs_by_component": macs.by_component,
        "macs_effective_by_component": macs.effective_by_component,
        "warnings": [],
        "environment": env,
    }


def _add_latency(job: _Job, stats: LatencyStats, peak: GemmPeak, policy: TimingPolicy,
                 interleaved_with: int) -> None:
    record = job.record
    record["latency_ms"] = stats.to_dict()
    record["timing"] = {**asdict(policy), "interleaved_with": interleaved_with,
                        "allocator": allocator_state()}
    achieved = 2 * record["macs"] / (stats.median / 1e3)
    record["achieved_flops_per_s"] = achieved
    record["gemm_peak"] = peak.to_dict()
    record["fraction_of_peak"] = achieved / peak.flops_per_s
    if job.dense is not None:
        dense = job.dense.record
        dense_latency = dense["latency_ms"]
        record["speedup"] = dense_latency["median"] / stats.median
        ci = paired_ratio_ci(dense_latency["samples"], stats.samples)
        record["speedup_ci95"] = list(ci) if ci else None
        record["baseline_latency_ms"] = {key: dense_latency[key]  # the samples make speedup_ci95 reproducible
                                         for key in ("median", "ci95_low", "ci95_high", "runs", "samples")}
    if not stats.converged:
        width = stats.ci_relative_halfwidth
        reached = f"±{width:.1%}" if width is not None else "no interval yet"
        limit = f"{policy.max_runs} runs" if stats.runs >= policy.max_runs else f"time budget of {policy.budget_s:g} s"
        record["warnings"].append(f"{limit} ran out before the 95% CI of the median "
                                  f"reached ±{policy.rel_ci:.0%} ({reached} after {stats.runs} runs)")


def measure(options: MeasureOptions | None = None, progress: ProgressCallback | None = None,
            load: ModelLoader = load_model) -> list[dict]:
    """Measure every model, and each compressed variant of it, at every input size; one record each.

    All arguments are checked and all models loaded before anything is timed, so bad input
    fails fast. Each pipeline in ``options.compress`` yields a variant measured beside its dense
    model; latency is measured in lock-step rounds over all (model, variant, size) triples, and
    each variant gets its speedup over the dense model with a 95 % interval from the paired rounds.
    With ``options.task``, every record gets ``quality`` and every variant's ``fidelity``.
    ``load`` loads a model (a caller may pass a cached loader; it must not hand out a model that
    anything else modifies).
    """
    options = options or MeasureOptions()
    progress = progress or (lambda description, fraction: None)
    if not options.models:
        raise InvalidInputError("give at least one --model")
    if options.batch < 1:
        raise InvalidInputError(f"--batch must be >= 1, got {options.batch}")
    device = resolve_device(options.device)
    threads = options.threads if options.threads is not None else default_threads()
    run_id = uuid.uuid4().hex
    env = environment()
    check_task_given([list(steps) for steps in options.compress], options.task)
    runtimes = _check_runtimes(options)
    task = find_task(options.task) if options.task else None
    if task is not None:
        resolve_data_root(options.data_root)  # a missing data root fails before any model loads
    if options.latency and options.steady_allocator and device.type == "cpu":
        steady_allocator()

    with cpu_threads(threads):
        jobs: list[_Job] = []
        for index, name in enumerate(dict.fromkeys(options.models)):
            progress(f"loading {name}", 0.2 * index / len(options.models))
            loaded = load(name, options.weights, options.attn_implementation, options.seed)
            specs = _sizes_for(loaded, options)
            variants = [(loaded.model, loaded.adapter, loaded.compression)]
            context = _context(loaded, task, options, device, progress)
            for steps in options.compress:
                cpu_only = [s for s in steps
                            if s.name == "int8_dynamic" and resolve_backend(s.options["backend"]) == "torch.ao"]
                if device.type != "cpu" and cpu_only:
                    raise InvalidInputError("int8_dynamic with the torch.ao backend runs on CPU only; install "
                                            "torchao or measure it with --device cpu")
                progress(f"compressing {name}", 0.2 * index / len(options.models))
                variant = apply_pipeline(loaded.model, list(steps), context)
                variant.model.eval()
                variants.append((variant.model, ModelAdapter(variant.model),
                                 (loaded.compression or []) + variant.manifest))
            dynamic = [is_input_dependent(model) for model, _, _ in variants]
            if any(dynamic) and task is None:
                raise InvalidInputError(f"{name}: a variant's cost depends on its input (early exit): give --task, "
                                        "it is measured per example on the task's evaluation split")
            if options.per_example and task is None:
                raise InvalidInputError("measuring per example needs --task: the examples are its evaluation split")
            per_example = [options.per_example or is_dynamic for is_dynamic in dynamic]
            excluded = [excluded_runtimes([step["name"] for step in manifest or []], runtimes)
                        for _, _, manifest in variants]
            if options.per_example and any(onnx_quantization(model) is not None for model, _, _ in variants):
                raise InvalidInputError("--per-example times eager PyTorch, and an ort_int8 variant runs only under "
                                        "onnxruntime: measure it without --per-example")
            data = _task_data(loaded, task, options) if task else None
            qualities = _qualities(loaded, variants, dynamic, data, options, progress) if data else None
            params = [count_params(model, adapter.component_of) for model, adapter, _ in variants]  # size-free
            common = (options, run_id, threads, env)
            for spec in specs:
                counted = {position: count_macs(model, adapter.build_inputs(spec, "meta"), adapter.component_of)
                           for position, (model, adapter, _) in enumerate(variants) if not dynamic[position]}
                for runtime in runtimes:
                    dense = None
                    for position, (model, adapter, manifest) in enumerate(variants):
                        if dynamic[position] or runtime in excluded[position]:
                            continue
                        record = _base_record(loaded, adapter, params[position], counted[position], spec.describe(),
                                              *common, manifest)
                        if qualities:
                            record.update(qualities[position])
                        record["warnings"] += [f"not measured under {other}: {step} variants run only under "
                                               f"{runtimes_phrase(step)}" for other, step in excluded[position].items()]
                        inputs = adapter.build_inputs(spec, "cpu", options.seed)
                        job = _Job(loaded, model, adapter, spec, inputs, record, dense, runtime=runtime)
                        if position == 0:
                            dense = job
                        elif dense is not None:  # exact counts: a ratio that needs no timing
                            record["predicted_speedup"] = dense.record["macs"] / record["macs"]
                        jobs.append(job)
            if any(per_example):
                progress(f"counting {name} example by example", 0.25)
                jobs.extend(_per_example_jobs(loaded, variants, per_example, params, qualities, data, common))

        if options.audit:
            for index, job in enumerate(jobs):
                if job.examples is None:  # per-example jobs: the counts are per example, on real inputs
                    progress(f"auditing counters on {job.loaded.name}", 0.2 + 0.1 * index / len(jobs))
                    job.record["audit"] = audit_counts(job.model, job.inputs, job.record["macs"])

        if options.latency:
            _time_jobs(jobs, device, options, progress)
    progress("done", 1.0)
    return [job.record for job in jobs]


def _context(loaded: LoadedModel, task, options: MeasureOptions, device: torch.device,
             progress: ProgressCallback) -> CompressionContext:
    """The compression context for ``loaded``'s pipelines: built only when a step uses data and a task is given."""
    uses_data = any(COMPRESSORS.get(step.name).uses_context for steps in options.compress for step in steps)
    if task is None or not uses_data:
        return NO_CONTEXT
    if MODALITY_OF_INPUT[task.input] == loaded.adapter.modality:
        check_model_for_task(loaded.model, task)  # "fine-tune first" before any data or compression
    return build_context(task, loaded.adapter.modality, loaded.checkpoint, options.data_root, device, options.seed,
                         progress, options.task_limit)


def _check_runtimes(options: MeasureOptions) -> list[str]:
    """The runtimes asked for, each known (near-match errors), in order, once each."""
    names = list(dict.fromkeys(options.runtimes))
    if not names:
        raise InvalidInputError("give at least one --runtime")
    for name in names:
        RUNTIMES.get(name)
    for steps in options.compress:
        check_runtimes_served([step.name for step in steps], names)
    if names != ["eager"] and not options.latency:
        raise InvalidInputError("--runtime matters only for latency (MACs and params are those of the PyTorch "
                                "model); drop --no-latency or the runtimes other than eager")
    return names


def _task_data(loaded: LoadedModel, task, options: MeasureOptions) -> TaskData:
    if MODALITY_OF_INPUT[task.input] == loaded.adapter.modality:
        check_model_for_task(loaded.model, task)  # before loading a tokenizer or any data
    return prepare_task(task, loaded.adapter.modality, loaded.checkpoint, options.data_root, options.task_limit)


def _qualities(loaded: LoadedModel, variants: list, dynamic: list[bool], data: TaskData, options: MeasureOptions,
               progress: ProgressCallback) -> list[dict]:
    """``quality`` for the dense model (unless ``dense_quality`` is off) and each variant; ``fidelity`` for
    variants (not for an early-exit model, which has no last layer's states for every example)."""
    results, dense_states = [], None
    for position, (model, _, manifest) in enumerate(variants):
        progress(f"evaluating {loaded.name} on {data.task.name}", 0.2)
        served_by = "onnxruntime" if onnx_quantization(model) is not None else None
        if served_by:  # its int8 model exists only in ONNX Runtime: evaluated there
            model = served_by_onnxruntime(model, torch.get_num_threads())
        entry = {"quality": task_quality(model, data)} if position or options.dense_quality or dynamic[0] else {}
        if served_by and "quality" in entry:
            entry["quality"]["runtime"] = served_by
        if position == 0:
            dense_states = None if dynamic[0] else hidden_states(model, data)
        elif dense_states is not None and not dynamic[position]:
            entry["fidelity"] = fidelity(dense_states, model, data, manifest[len(loaded.compression or []):])
        results.append(entry)
    return results


def _example_macs(model: nn.Module, adapter: ModelAdapter, examples: list[dict]) -> tuple[list[MacCount], list[int]]:
    """Each example's MACs, counted on its real inputs; for an input-dependent model also the layer it left after."""
    dynamic = is_input_dependent(model)
    counts, exits, by_shape = [], [], {}
    for example in examples:
        if dynamic:
            counts.append(count_macs(model, example, adapter.component_of))
            exits.extend(model.compbench_exit_layers)
            continue
        shape = tuple((key, tuple(value.shape)) for key, value in example.items())
        if shape not in by_shape:  # a static model's count depends on the input's shape alone
            by_shape[shape] = count_macs(model, example, adapter.component_of)
        counts.append(by_shape[shape])
    return counts, exits


def _mean_count(counts: list[MacCount]) -> MacCount:
    def mean_of(key: str) -> dict[str, int]:
        names = dict.fromkeys(name for count in counts for name in getattr(count, key))
        return {name: round(sum(getattr(c, key).get(name, 0) for c in counts) / len(counts)) for name in names}
    return MacCount(total=round(sum(c.total for c in counts) / len(counts)),
                    effective=round(sum(c.effective for c in counts) / len(counts)),
                    by_component=mean_of("by_component"), effective_by_component=mean_of("effective_by_component"))


def _examples_input(data: TaskData, examples: list[dict]) -> dict:
    """The record's ``input`` for a per-example job: which examples, and their mean size."""
    described = {"kind": "examples", "task": data.task.name, "split": data.task.evaluate_on,
                 "examples": len(examples), "batch": 1}
    if data.task.input == "audio":
        described["mean_seconds"] = float(np.mean([e["input_values"].shape[-1] / SAMPLE_RATE for e in examples]))
    else:
        described["mean_tokens"] = float(np.mean([e["input_ids"].shape[-1] for e in examples]))
    return described


def _per_example_jobs(loaded: LoadedModel, variants: list, per_example: list[bool], params: list[ParamCount],
                      qualities: list[dict], data: TaskData, common: tuple) -> list[_Job]:
    """The dense model and each variant measured per example (input-dependent ones, or all with
    ``per_example``) on the evaluation examples, counted example by example."""
    examples = single_example_inputs(loaded.model, data)
    described = _examples_input(data, examples)
    jobs, dense = [], None
    for position, (model, adapter, manifest) in enumerate(variants):
        if position and not per_example[position]:
            continue
        counts, exits = _example_macs(model, adapter, examples)
        record = _base_record(loaded, adapter, params[position], _mean_count(counts), described, *common,
                              manifest)
        record.update(qualities[position])
        totals = [count.total for count in counts]
        record["macs_per_example"] = {"mean": float(np.mean(totals)), "median": float(np.median(totals)),
                                      "p90": float(np.percentile(totals, 90)), "max": max(totals),
                                      "min": min(totals), "samples": totals}
        if exits:
            layers = len(adapter.layers())
            record["exits"] = {str(layer): exits.count(layer) for layer in range(1, layers + 1)}
            record["mean_exit_layer"] = sum(exits) / len(exits)
        job = _Job(loaded, model, adapter, None, {}, record, dense, examples=examples, example_macs=totals)
        if position == 0:
            dense = job
        else:
            record["predicted_speedup"] = dense.record["macs_per_example"]["mean"] / record["macs_per_example"]["mean"]
        jobs.append(job)
    return jobs


def _time_jobs(jobs: list[_Job], device: torch.device, options: MeasureOptions,
               progress: ProgressCallback) -> None:
    for job in jobs:
        job.model.to(device)
        job.inputs = {k: v.to(device) for k, v in job.inputs.items()}
        if job.examples is not None:
            job.examples = [{k: v.to(device) for k, v in example.items()} for example in job.examples]
    sized = [job for job in jobs if job.examples is None]
    runs = _prepare_runtimes(sized, device, progress)
    progress("measuring fp32 GEMM peak", 0.3)
    peak = measure_gemm_peak(device, threads=torch.get_num_threads())
    if options.memory:
        for job in sized:
            if job.runtime == "eager":  # the allocator's peak says nothing about another runtime's memory
                job.record["memory"] = measure_peak_memory(job.model, job.inputs, device).to_dict()

    targets = [TimingTarget(str(i), run) for i, run in enumerate(runs)]
    budget = options.timing.budget_s

    def on_round(state: list[TimingTarget]) -> None:
        done = sum(1.0 if t.done else min(t.spent_s / budget, 0.99) for t in state) / len(state)
        running = [sized[int(t.name)] for t in state if not t.done]
        label = ", ".join(f"{j.loaded.name} {j.spec.label()}" for j in running[:2]) or "finishing"
        progress(f"timing {label}", 0.35 + 0.65 * done)

    stats = time_interleaved(targets, device, options.timing, on_round) if targets else {}
    per_example = [job for job in jobs if job.examples is not None and job.dense is None]  # one group per dense job
    for dense in per_example:
        group = [dense] + [job for job in jobs if job.dense is dense]
        progress(f"timing {dense.loaded.name} example by example", 0.9)
        _time_per_example(group, device, options)
    progress("measuring fp32 GEMM peak again", 0.99)
    peak = max(peak, measure_gemm_peak(device, threads=torch.get_num_threads()),
               key=lambda p: p.flops_per_s)  # the best of before and after: drift cannot lower it
    for i, job in enumerate(sized):  # dense jobs come before their variants
        _add_latency(job, stats[str(i)], peak, options.timing, interleaved_with=len(sized))
    for job in jobs:
        if job.examples is not None:
            _add_example_peak(job, peak)


def tolerance_for(model: nn.Module) -> float:
    """How far a runtime's output may be from eager PyTorch's: looser for int8 weights, whose activations
    each runtime's kernels quantize themselves (:data:`~compbench.runtimes.base.QUANTIZED_TOLERANCE`)."""
    return QUANTIZED_TOLERANCE if has_quantized_weights(model) else DEFAULT_TOLERANCE


def _prepare_runtimes(jobs: list[_Job], device: torch.device, progress: ProgressCallback) -> list:
    """Each job's forward under its runtime, checked against eager PyTorch's output on the same inputs
    first (an error, never a latency, for a runtime that disagrees); records gain ``runtime``."""
    runs, reference = [], {}
    threads = torch.get_num_threads()
    for job in jobs:
        prepared = RUNTIMES.get(job.runtime).prepare(job.model, job.inputs, threads, device, None)
        difference = 0.0
        if job.runtime != "eager":  # eager's own output is computed once per model and size, only when compared
            progress(f"preparing {job.loaded.name} under {job.runtime}", 0.28)
            key = (id(job.model), job.spec)
            if key not in reference:
                reference[key] = eager_output(job.model, job.inputs)
            difference = check_outputs(job.runtime, reference[key], (prepared.checked_output or prepared.output)(),
                                       tolerance_for(job.model))
        job.record["runtime"] = {**prepared.info, "output_difference": difference,
                                 "tolerance": tolerance_for(job.model)}
        if prepared.checked_output is not None:  # the runtime quantized it: how far that moved the output
            job.record["runtime"]["quantized_output_difference"] = output_difference(
                job.runtime, reference[key], prepared.output())
        runs.append(prepared.run)
    return runs


def _time_per_example(group: list[_Job], device: torch.device, options: MeasureOptions) -> None:
    """Time the dense job and its input-dependent variants example by example, interleaved; fill their latency."""
    def forward_of(job: _Job):
        return lambda index: job.model(**job.examples[index])

    with torch.inference_mode():
        latencies, rounds = time_per_example([forward_of(job) for job in group], len(group[0].examples), device,
                                             budget_s=options.timing.budget_s * len(group))
    dense_ms = latencies[0]
    for job, times in zip(group, latencies, strict=True):
        record = job.record
        record["latency_ms"] = per_example_summary(times, rounds)
        record["timing"] = {"per_example": True, "rounds": rounds, "budget_s": options.timing.budget_s * len(group),
                            "interleaved_with": len(group), "allocator": allocator_state()}
        if job is group[0]:
            continue
        record["speedup"] = float(np.mean(dense_ms) / np.mean(times))  # as predicted_speedup: a ratio of means
        ci = mean_ratio_ci(dense_ms, times)
        record["speedup_ci95"] = list(ci) if ci else None
        record["baseline_latency_ms"] = {key: group[0].record["latency_ms"][key]
                                         for key in ("median", "p90", "mean", "ci95_low", "ci95_high", "runs",
                                                     "samples")}
        measured = np.asarray(dense_ms) / np.asarray(times)
        predicted = np.asarray(group[0].example_macs, dtype=float) / np.asarray(job.example_macs, dtype=float)
        efficiency = measured / predicted
        record["speedup_per_example"] = {
            "median": float(np.median(measured)), "p10": float(np.percentile(measured, 10)),
            "p90": float(np.percentile(measured, 90)), "predicted_median": float(np.median(predicted)),
            "efficiency_median": float(np.median(efficiency)),  # measured / MAC-predicted, the median example
            "efficiency_p10": float(np.percentile(efficiency, 10))}


def _add_example_peak(job: _Job, peak: GemmPeak) -> None:
    record = job.record
    if "latency_ms" not in record:
        return
    achieved = 2 * record["macs_per_example"]["mean"] / (record["latency_ms"]["mean"] / 1e3)
    record["achieved_flops_per_s"] = achieved
    record["gemm_peak"] = peak.to_dict()
    record["fraction_of_peak"] = achieved / peak.flops_per_s
