"""The record: what a run writes for each subject at each size under each runtime (or per example), built
in two steps: the counts, quality and provenance before timing (:func:`base_record`, one job per record,
:func:`sized_jobs`), the latency fields after it (:func:`add_latency`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from compbench.architectures.families import ModelAdapter
from compbench.compression.pipeline import runtimes_phrase
from compbench.counting.macs import MacCount
from compbench.counting.params import ParamCount
from compbench.measure.count import Counts
from compbench.measure.jobs import Job
from compbench.measure.resolve import Run
from compbench.measure.variants import ModelGroup
from compbench.models import LoadedModel
from compbench.record import SCHEMA_VERSION, real_time_factor
from compbench.timing.allocator import allocator_state
from compbench.timing.peak import GemmPeak
from compbench.timing.stats import LatencyStats, paired_ratio_ci
from compbench.timing.wallclock import TimingPolicy


def compression_steps(manifest: list[dict] | None) -> list[dict] | None:
    """The record's ``compression``: each step's name, amount and options, in order (None: the dense model)."""
    if not manifest:
        return None
    return [{"name": s["name"], "amount": s["amount"], "options": s["options"]} for s in manifest]


def base_record(loaded: LoadedModel, adapter: ModelAdapter, params: ParamCount, macs: MacCount,
                described_input: dict, run: Run, manifest: list[dict] | None) -> dict:
    """Everything a record says before it is timed: what was measured, where, its params and MACs."""
    dtype = str(adapter.floating_dtype()).removeprefix("torch.")
    for step in manifest or []:
        dtype = step.get("dtype", dtype)  # a cast or quantization step names the weights' dtype
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": loaded.name,
        **({"label": loaded.label} if loaded.label and loaded.label != loaded.name else {}),
        "model_source": loaded.source,
        "checkpoint": loaded.checkpoint,
        **({"base_model": loaded.origin} if loaded.origin else {}),
        "family": loaded.model.config.model_type,
        "modality": adapter.modality,
        "weights": loaded.weights,
        "compression": compression_steps(manifest),
        "manifest": manifest,
        "input": described_input,
        "device": run.options.device,
        "threads": run.threads,
        "attn_implementation": loaded.attn_implementation,
        "dtype": dtype,
        "params": params.total,
        "params_nonzero": params.nonzero,
        "params_by_component": params.by_component,
        "macs": macs.total,
        "macs_effective": macs.effective,
        "macs_by_component": macs.by_component,
        "macs_effective_by_component": macs.effective_by_component,
        "warnings": list(run.notes.get(loaded.name, [])),
        "environment": run.environment,
    }


def sized_jobs(group: ModelGroup, counts: Counts, qualities: list[dict] | None, run: Run) -> list[Job]:
    """One job per size, runtime and subject (input-dependent subjects and excluded runtimes left out), each
    variant beside its dense job of the same size and runtime, with its MAC-predicted speedup."""
    jobs = []
    for spec in group.specs:
        for runtime in run.runtimes:
            dense = None
            for position, subject in enumerate(group.subjects):
                if subject.dynamic or runtime in subject.excluded:
                    continue
                record = base_record(group.loaded, subject.adapter, counts.params[position],
                                     counts.macs[spec][position], spec.describe(), run, subject.manifest)
                if qualities:
                    record.update(qualities[position])
                record["warnings"] += [f"not measured under {other}: {step} variants run only under "
                                       f"{runtimes_phrase(step)}" for other, step in subject.excluded.items()]
                inputs = subject.adapter.build_inputs(spec, "cpu", run.options.seed)
                job = Job(group.loaded, subject.model, subject.adapter, spec, inputs, record, dense, runtime=runtime,
                          subject=position)
                if position == 0:
                    dense = job
                elif dense is not None:  # exact counts: a ratio that needs no timing
                    record["predicted_speedup"] = dense.record["macs"] / record["macs"]
                jobs.append(job)
    return jobs


def compare_with_baseline(jobs: list[Job], run: Run) -> None:
    """With ``--baseline``: every other model's dense sized job is compared with the baseline's job of the same
    size and runtime (timed in the same lock-step rounds), as a variant is with its dense job; its record names
    the ``baseline`` and gets the MAC-predicted speedup over it. Variants stay compared with their own dense model."""
    if run.options.baseline is None:
        return
    name = run.models[0]  # resolve puts the baseline first
    references = {(job.spec, job.runtime): job for job in jobs
                  if job.loaded.name == name and job.dense is None and job.examples is None}
    for job in jobs:
        reference = references.get((job.spec, job.runtime))
        if job.loaded.name == name or job.dense is not None or job.examples is not None or reference is None:
            continue
        job.baseline = reference
        job.record["baseline"] = name
        job.record["predicted_speedup"] = reference.record["macs"] / job.record["macs"]


def add_latency(job: Job, stats: LatencyStats, peak: GemmPeak, policy: TimingPolicy, interleaved_with: int) -> None:
    """A sized job's latency, the timing policy, achieved FLOP/s against the GEMM peak, and for a variant its
    speedup over its dense job (another model, over the baseline's) in the same lock-step rounds (with the paired
    95 % interval)."""
    record = job.record
    record["latency_ms"] = stats.to_dict()
    record["timing"] = {**asdict(policy), "interleaved_with": interleaved_with,
                        "allocator": allocator_state()}
    achieved = 2 * record["macs"] / (stats.median / 1e3)
    record["achieved_flops_per_s"] = achieved
    record["gemm_peak"] = peak.to_dict()
    record["fraction_of_peak"] = achieved / peak.flops_per_s
    if job.reference is not None:
        dense = job.reference.record
        dense_latency = dense["latency_ms"]
        record["speedup"] = dense_latency["median"] / stats.median
        ci = paired_ratio_ci(dense_latency["samples"], stats.samples)
        record["speedup_ci95"] = list(ci) if ci else None
        record["baseline_latency_ms"] = {key: dense_latency[key]  # the samples make speedup_ci95 reproducible
                                         for key in ("median", "ci95_low", "ci95_high", "runs", "samples")}
    add_real_time_factor(record)
    if not stats.converged:
        width = stats.ci_relative_halfwidth
        reached = f"±{width:.1%}" if width is not None else "no interval yet"
        limit = f"{policy.max_runs} runs" if stats.runs >= policy.max_runs else f"time budget of {policy.budget_s:g} s"
        record["warnings"].append(f"{limit} ran out before the 95% CI of the median "
                                  f"reached ±{policy.rel_ci:.0%} ({reached} after {stats.runs} runs)")


def add_real_time_factor(record: dict) -> None:
    """A speech record with latency gets its ``rtf`` (:func:`compbench.record.real_time_factor`)."""
    rtf = real_time_factor(record)
    if rtf is not None:
        record["rtf"] = rtf


def add_example_peak(job: Job, peak: GemmPeak) -> None:
    """A per-example job's achieved FLOP/s (mean MACs over mean latency) against the GEMM peak."""
    record = job.record
    if "latency_ms" not in record:
        return
    achieved = 2 * record["macs_per_example"]["mean"] / (record["latency_ms"]["mean"] / 1e3)
    record["achieved_flops_per_s"] = achieved
    record["gemm_peak"] = peak.to_dict()
    record["fraction_of_peak"] = achieved / peak.flops_per_s
    add_real_time_factor(record)
