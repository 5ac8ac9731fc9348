"""Per-example measurement: a variant whose work depends on its input (early exit) has no cost at an input
size, so it is measured on the task's evaluation split example by example, beside the dense model on the
same examples (one record each, input kind ``examples``); ``--per-example`` measures every model so.

MACs are counted example by example on the real inputs (``macs`` is the mean; ``macs_per_example`` the
distribution; ``exits`` where the examples left), latency is timed example by example, interleaved with
the dense model (:mod:`compbench.timing.per_example`), and ``speedup`` is the ratio of mean latencies, as
``predicted_speedup`` is the ratio of mean MACs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from compbench.architectures.families import SAMPLE_RATE, ModelAdapter
from compbench.counting.macs import MacCount, count_macs
from compbench.counting.weights import is_input_dependent
from compbench.measure.count import Counts
from compbench.measure.jobs import Job
from compbench.measure.records import base_record
from compbench.measure.resolve import Run
from compbench.measure.variants import ModelGroup
from compbench.quality.evaluate import TaskData, batched_example_inputs, single_example_inputs
from compbench.timing.allocator import allocator_state
from compbench.timing.per_example import mean_ratio_ci, per_example_summary, time_per_example


def example_macs(model: nn.Module, adapter: ModelAdapter, examples: list[dict],
                 predictions: list[int] | None = None) -> tuple[list[MacCount], list[int]]:
    """Each example's (or batch's) MACs, counted on its real inputs; for an input-dependent model also the layer
    each example left after, and (into ``predictions``) the label it predicted."""
    dynamic = is_input_dependent(model)
    counts, exits, by_shape = [], [], {}
    for example in examples:
        if dynamic:
            handle = None if predictions is None else model.register_forward_hook(
                lambda module, args, output: predictions.extend(output.logits.argmax(-1).tolist()))
            try:
                counts.append(count_macs(model, example, adapter.component_of))
            finally:
                if handle is not None:
                    handle.remove()
            exits.extend(model.compbench_exit_layers)
            continue
        # a static model's count depends on the input's shape alone (counted on meta tensors, where a padded
        # batch's attention mask cannot be read: its values move no MAC)
        shaped = {key: value for key, value in example.items() if key != "attention_mask"}
        shape = tuple((key, tuple(value.shape)) for key, value in shaped.items())
        if shape not in by_shape:
            by_shape[shape] = count_macs(model, shaped, adapter.component_of)
        counts.append(by_shape[shape])
    return counts, exits


def mean_count(counts: list[MacCount]) -> MacCount:
    """The mean of per-example counts, component by component, rounded to whole MACs."""
    def mean_of(key: str) -> dict[str, int]:
        names = dict.fromkeys(name for count in counts for name in getattr(count, key))
        return {name: round(sum(getattr(c, key).get(name, 0) for c in counts) / len(counts)) for name in names}
    return MacCount(total=round(sum(c.total for c in counts) / len(counts)),
                    effective=round(sum(c.effective for c in counts) / len(counts)),
                    by_component=mean_of("by_component"), effective_by_component=mean_of("effective_by_component"))


def examples_input(data: TaskData, examples: list[dict], batch: int = 1) -> dict:
    """The record's ``input`` for a per-example job: which examples, how many at a time, and their mean size."""
    described = {"kind": "examples", "task": data.task.name, "split": data.task.evaluate_on,
                 "examples": len(examples), "batch": batch}
    if data.task.input == "audio":
        described["mean_seconds"] = float(np.mean([e["input_values"].shape[-1] / SAMPLE_RATE for e in examples]))
    else:
        described["mean_tokens"] = float(np.mean([e["input_ids"].shape[-1] for e in examples]))
    return described


def _distribution(totals: list[int]) -> dict:
    return {"mean": float(np.mean(totals)), "median": float(np.median(totals)), "p90": float(np.percentile(totals, 90)),
            "max": max(totals), "min": min(totals), "samples": totals}


def per_example_jobs(group: ModelGroup, counts: Counts, qualities: list[dict], data: TaskData, run: Run) -> list[Job]:
    """The dense model and each variant measured per example (input-dependent ones, or all with
    ``per_example``) on the evaluation examples, counted example by example. With ``--batch N`` (text tasks),
    the examples are timed N at a time, in order, each batch padded to its longest: an early-exit variant runs
    the batch together, shrinking as examples leave. Each example's MACs are still counted alone
    (``macs_per_example``); ``macs`` and ``macs_per_batch`` are what a batch costs, and an early-exit record
    says how often an example left at the same layer with the same prediction in a batch as alone
    (``batch_agreement``)."""
    if not any(subject.per_example for subject in group.subjects):
        return []
    batch = run.options.batch
    run.progress(f"counting {group.loaded.name} example by example", 0.25)
    examples = single_example_inputs(group.loaded.model, data)
    batches = batched_example_inputs(group.loaded.model, data, batch) if batch > 1 else None
    described = examples_input(data, examples, batch)
    if batches is not None:
        described["batches"] = len(batches)
    jobs, dense = [], None
    for position, subject in enumerate(group.subjects):
        if position and not subject.per_example:
            continue
        alone_predictions: list[int] = []
        example_counts, exits = example_macs(subject.model, subject.adapter, examples, alone_predictions)
        totals = [c.total for c in example_counts]
        timed_counts, timed_totals, agreement = example_counts, totals, None
        if batches is not None:
            if subject.dynamic:
                subject.model.compbench_exit_batched = True  # an early-exit variant runs each batch together
            batch_predictions: list[int] = []
            timed_counts, batch_exits = example_macs(subject.model, subject.adapter, batches, batch_predictions)
            timed_totals = [c.total for c in timed_counts]
            if exits:
                agreement = {"examples": len(exits),
                             "same_exit": sum(a == b for a, b in zip(exits, batch_exits, strict=True)) / len(exits),
                             "same_prediction": sum(a == b for a, b in zip(alone_predictions, batch_predictions,
                                                                           strict=True)) / len(exits)}
                exits = batch_exits  # where they left as timed
        record = base_record(group.loaded, subject.adapter, counts.params[position], mean_count(timed_counts),
                             described, run, subject.manifest)
        record.update(qualities[position])
        record["macs_per_example"] = _distribution(totals)
        if batches is not None:
            record["macs_per_batch"] = _distribution(timed_totals)
        if exits:
            layers = len(subject.adapter.layers())
            record["exits"] = {str(layer): exits.count(layer) for layer in range(1, layers + 1)}
            record["mean_exit_layer"] = sum(exits) / len(exits)
        if agreement is not None:
            record["batch_agreement"] = agreement
        job = Job(group.loaded, subject.model, subject.adapter, None, {}, record, dense,
                  examples=batches or examples, example_macs=timed_totals, subject=position)
        if position == 0:
            dense = job
        else:
            record["predicted_speedup"] = float(np.mean(dense.example_macs) / np.mean(timed_totals))
        jobs.append(job)
    return jobs


def time_examples(group: list[Job], device: torch.device, budget_s: float) -> None:
    """Time a dense per-example job and its variants example by example, interleaved; fill their latency,
    speedup (a ratio of mean latencies, as predicted_speedup is of mean MACs) and per-example speedups."""
    def forward_of(job: Job):
        return lambda index: job.model(**job.examples[index])

    with torch.inference_mode():
        latencies, rounds = time_per_example([forward_of(job) for job in group], len(group[0].examples), device,
                                             budget_s=budget_s * len(group))
    dense_ms = latencies[0]
    for job, times in zip(group, latencies, strict=True):
        record = job.record
        record["latency_ms"] = per_example_summary(times, rounds)
        record["timing"] = {"per_example": True, "rounds": rounds, "budget_s": budget_s * len(group),
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
