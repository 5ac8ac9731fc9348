"""Stage 5, time: every sized job timed in lock-step rounds with every other (each under its runtime,
checked against eager PyTorch's output first), the per-example groups example by example, peak memory
under eager, and the fp32 GEMM peak before and after, so achieved FLOP/s has a ceiling to be read against."""

from __future__ import annotations

import torch
from torch import nn

from compbench.counting.weights import has_quantized_weights
from compbench.measure.jobs import Job
from compbench.measure.per_example import time_examples
from compbench.measure.records import add_example_peak, add_latency
from compbench.measure.resolve import Run
from compbench.runtimes import RUNTIMES, check_outputs
from compbench.runtimes.base import DEFAULT_TOLERANCE, QUANTIZED_TOLERANCE, eager_output, output_difference
from compbench.timing.allocator import steady_allocator
from compbench.timing.memory import measure_peak_memory
from compbench.timing.peak import GemmPeak, measure_gemm_peak
from compbench.timing.wallclock import TimingTarget, time_interleaved


def steady_process(run: Run) -> None:
    """Before anything loads: on CPU, malloc that keeps freed memory (:mod:`compbench.timing.allocator`)."""
    options = run.options
    if options.latency and options.steady_allocator and run.device.type == "cpu":
        steady_allocator()


def time_jobs(jobs: list[Job], run: Run) -> None:
    """Fill every job's latency fields (and, under eager, peak memory)."""
    device, options, progress = run.device, run.options, run.progress
    for job in jobs:
        job.model.to(device)
        job.inputs = {k: v.to(device) for k, v in job.inputs.items()}
        if job.examples is not None:
            job.examples = [{k: v.to(device) for k, v in example.items()} for example in job.examples]
    sized = [job for job in jobs if job.examples is None]
    runs = prepare_runtimes(sized, device, run)
    progress("measuring fp32 GEMM peak", 0.3)
    peak = measure_gemm_peak(device, threads=torch.get_num_threads())
    if options.memory:
        for job in sized:
            if job.runtime == "eager":  # the allocator's peak says nothing about another runtime's memory
                job.record["memory"] = measure_peak_memory(job.model, job.inputs, device).to_dict()

    targets = [TimingTarget(str(i), forward) for i, forward in enumerate(runs)]
    budget = options.timing.budget_s

    def on_round(state: list[TimingTarget]) -> None:
        done = sum(1.0 if t.done else min(t.spent_s / budget, 0.99) for t in state) / len(state)
        running = [sized[int(t.name)] for t in state if not t.done]
        if running:  # the first two still running (the rest are timed in the same rounds)
            label = ", ".join(j.label() + ("" if j.runtime == "eager" else f" under {j.runtime}")
                              for j in running[:2])
            progress(f"timing {label}" + (f" and {len(running) - 2} more" if len(running) > 2 else ""),
                     0.35 + 0.65 * done)

    stats = time_interleaved(targets, device, options.timing, on_round) if targets else {}
    per_example = [job for job in jobs if job.examples is not None and job.dense is None]  # one group per dense job
    for dense in per_example:
        group = [dense] + [job for job in jobs if job.dense is dense]
        progress(f"timing {dense.loaded.name} example by example", 0.9)
        time_examples(group, device, options.timing.budget_s)
    progress("measuring fp32 GEMM peak again", 0.99)
    after = measure_gemm_peak(device, threads=torch.get_num_threads())
    collapsed = gemm_rate_warning(peak, after)
    peak = max(peak, after, key=lambda p: p.flops_per_s)  # the best of before and after: drift cannot lower it
    for i, job in enumerate(sized):  # dense jobs come before their variants
        add_latency(job, stats[str(i)], peak, options.timing, interleaved_with=len(sized))
        if collapsed:
            job.record["warnings"].append(collapsed)
    for job in jobs:
        if job.examples is not None:
            add_example_peak(job, peak)


RATE_DROP = 0.5  # the GEMM rate after timing below this fraction of the rate before (or the reverse) is a warning


def gemm_rate_warning(before: GemmPeak, after: GemmPeak) -> str | None:
    """A warning where this machine's fp32 GEMM rate moved by half or more between the start and the end of the
    timing: other processes took the cores (with a thread per core, waiting threads make it collapse), so the
    latencies between were measured on a different machine than the one the peak describes."""
    low, high = sorted((before.flops_per_s, after.flops_per_s))
    if low >= RATE_DROP * high:
        return None
    threads = after.threads or torch.get_num_threads()
    fewer = f"; or time with fewer threads (--threads {max(1, threads // 2)})" if threads > 1 else ""
    return (f"this machine's fp32 GEMM rate was {before.flops_per_s / 1e9:.1f} GFLOP/s before the timing and "
            f"{after.flops_per_s / 1e9:.1f} after, with {threads} thread{'s' if threads > 1 else ''}: other "
            f"processes were using the cores, and the latencies are not those of an idle machine. Rerun when "
            f"the machine is idle{fewer}")


def tolerance_for(model: nn.Module) -> float:
    """How far a runtime's output may be from eager PyTorch's: looser for int8 weights, whose activations
    each runtime's kernels quantize themselves (:data:`~compbench.runtimes.base.QUANTIZED_TOLERANCE`)."""
    return QUANTIZED_TOLERANCE if has_quantized_weights(model) else DEFAULT_TOLERANCE


def prepare_runtimes(jobs: list[Job], device: torch.device, run: Run) -> list:
    """Each job's forward under its runtime, checked against eager PyTorch's output on the same inputs
    first (an error, never a latency, for a runtime that disagrees); records gain ``runtime``."""
    runs, reference = [], {}
    threads = torch.get_num_threads()
    for job in jobs:
        if job.runtime != "eager":  # an export or a compile: the variant named, before it starts
            run.progress(f"preparing {job.label()} under {job.runtime}", 0.28)
        prepared = RUNTIMES.get(job.runtime).prepare(job.model, job.inputs, threads, device, None)
        difference = 0.0
        if job.runtime != "eager":  # eager's own output is computed once per model and size, only when compared
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
