"""A sweep's jobs: what each one measures, its stable key, and a rough estimate of its time; and the groups
they are timed in.

A job measures one model at one input size: either the dense model alone (kind ``dense``) or
variants (kind ``variant``): one compressor at every amount the sweep lists for it, or one
explicit pipeline. With a ``baseline:``, another model's dense job is timed interleaved with the baseline model
(measure --baseline). The jobs of one model at one size are one timing group: the dense model and every variant of
the group's pending jobs are built and timed in one run, interleaved (as ``measure`` with several ``--compress``),
so the dense model, the GEMM peak and the warm-up are timed once for all of them; each job still has its own key
and its own records, and a group runs again only for its jobs that are missing.
Listing another amount makes it a new job (the old one's records stay). A job's key hashes its canonical
configuration with the compbench version and the record schema version (as asv versions its
benchmarks), so a rerun recognises the jobs it has done and a changed setting is a new job.
A model whose kind cannot be told before running (a hub id that cannot be reached) becomes one
``unresolved`` job that fails at run time and is recorded like any failed job.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

from compbench import __version__
from compbench.compression.pipeline import steps_needing_task
from compbench.compression.spec import spec_label
from compbench.compressors import Step
from compbench.errors import CompbenchError, InvalidInputError
from compbench.models.loading import model_modality
from compbench.record import SCHEMA_VERSION
from compbench.sweep.schema import MeasureSettings, ModelEntry, Sweep
from compbench.tasks import find_task
from compbench.tasks.schema import MODALITY_OF_INPUT


@dataclass(frozen=True)
class Job:
    """One unit of a sweep: run in one process, its records appended together."""

    sweep: str
    kind: str
    model: ModelEntry
    measure: MeasureSettings
    modality: str | None = None  # None for an unresolved model
    size: float | None = None  # seconds (speech) or tokens (text)
    batch: int = 1
    variants: tuple[tuple[Step, ...], ...] = ()  # pipelines measured beside the dense model (none: dense job)
    task: str | None = None
    problem: str | None = None  # unresolved: why the model could not be resolved
    baseline: ModelEntry | None = None  # a dense job of another model: timed beside the sweep's baseline model

    def input(self) -> dict | None:
        if self.size is None:
            return None
        if self.modality == "speech":
            return {"kind": "audio", "seconds": float(self.size), "batch": self.batch}
        return {"kind": "text", "tokens": int(self.size), "batch": self.batch}

    def config(self) -> dict:
        """The canonical configuration the key is a hash of (no sweep name: renaming a sweep keeps its jobs)."""
        task = None
        if self.task:
            task = {"name": self.task, "version": find_task(self.task).version}
        config = {"kind": self.kind, "model": self.model.describe(), "input": self.input(),
                  "variants": [[s.to_dict() for s in steps] for steps in self.variants] or None, "task": task,
                  "measure": self.measure.describe()}
        if self.baseline is not None:  # only where set: the keys of sweeps without a baseline stay as they were
            config["baseline"] = self.baseline.describe()
        return config

    @cached_property
    def key(self) -> str:
        return job_key(self.config())

    def variants_label(self) -> str:
        """``dense``, ``head_pruning 0.25/0.5/0.75``, or a pipeline as written: ``layer_drop=0.5,int8_dynamic``."""
        if not self.variants:
            return "dense"
        names = {steps[0].name for steps in self.variants}
        if len(self.variants) > 1 and len(names) == 1 and all(len(s) == 1 and s[0].amount is not None
                                                              for s in self.variants):
            return f"{names.pop()} " + "/".join(f"{steps[0].amount:g}" for steps in self.variants)
        return ", ".join(spec_label(list(steps)) for steps in self.variants)

    def model_label(self) -> str:
        """The model and the input size: ``minilm-l6 64tok``, ``hubert-base 10s``."""
        model = self.model.model + (f"+finetune:{self.model.finetune}" if self.model.finetune else "")
        if self.kind == "unresolved":
            return f"{model} (unresolved)"
        unit = f"{self.size:g}s" if self.modality == "speech" else f"{int(self.size)}tok"
        return f"{model} {unit}" + (f"x{self.batch}" if self.batch != 1 else "")

    def what_label(self) -> str:
        """What the job measures of its model: ``head_pruning 0.25/0.5``, ``dense against hubert-base``."""
        if self.kind == "unresolved":
            return f"{self.variants_label()} and dense"
        return self.variants_label() + (f" against {self.baseline.model}" if self.baseline is not None else "")

    def label(self) -> str:
        """A short, readable name: ``minilm-l6 64tok head_pruning 0.25/0.5``."""
        separator = ": " if self.kind == "unresolved" else " "
        return f"{self.model_label()}{separator}{self.what_label()}"

    @property
    def timed(self) -> bool:
        return self.measure.latency and self.kind != "unresolved"


def job_key(config: dict) -> str:
    """Hash of a job's canonical configuration, the compbench version and the record schema version."""
    payload = {"job": config, "compbench": __version__, "schema_version": SCHEMA_VERSION}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _model_task(sweep: Sweep, entry: ModelEntry, modality: str, where: str) -> str | None:
    """The model's own ``task`` if written, else its fine-tuning task, else the sweep's task if the modality fits."""
    if entry.task_set:
        task = entry.task
    elif entry.finetune:
        task = entry.finetune
    else:
        task = sweep.task
        if task and MODALITY_OF_INPUT[find_task(task).input] != modality:
            return None  # the sweep's task is for the other modality: this model is measured for cost
    if task and MODALITY_OF_INPUT[find_task(task).input] != modality:
        raise InvalidInputError(f"{where}: task {task} takes {find_task(task).input}; "
                                f"{entry.model} is a {modality} model")
    return task


def variant_groups(sweep: Sweep) -> list[tuple[tuple[Step, ...], ...]]:
    """The variants of each variant job, in file order: a compressor at all its amounts, then each pipeline."""
    groups = [tuple((Step(c.name, amount, c.options),) for amount in c.amounts) for c in sweep.compressors]
    return groups + [(steps,) for steps in sweep.pipelines]


def plan_jobs(sweep: Sweep) -> list[Job]:
    """The sweep's jobs in a stable order: per model and size, the dense job, then each variant."""
    jobs = []
    groups = variant_groups(sweep)
    baseline_modality = _baseline_modality(sweep)
    for index, entry in enumerate(sweep.models):
        where = f"{sweep.file}: models[{index}]"
        try:
            modality = model_modality(entry.model)
        except CompbenchError as err:
            every_variant = tuple(steps for group in groups for steps in group)
            jobs.append(Job(sweep.name, "unresolved", entry, sweep.measure, problem=str(err), variants=every_variant))
            continue
        task = _model_task(sweep, entry, modality, where)
        if task is None and entry.compress:
            needing = [label for group in groups for steps in group for label in steps_needing_task(list(steps))]
            if needing:
                raise InvalidInputError(f"{where}: {needing[0]} needs task data; give the model (or the sweep) "
                                        f"a task for {modality}")
        sizes = sweep.sizes.seconds if modality == "speech" else sweep.sizes.tokens
        for size in sizes:
            common = dict(sweep=sweep.name, model=entry, measure=sweep.measure, modality=modality, size=size,
                          batch=sweep.sizes.batch, task=task)
            compared = sweep.baseline if modality == baseline_modality and entry != sweep.baseline else None
            jobs.append(Job(kind="dense", baseline=compared, **common))
            if entry.compress:  # ``compress: false``: the model is measured dense only
                jobs += [Job(kind="variant", variants=group, **common) for group in groups]
    return jobs


def _baseline_modality(sweep: Sweep) -> str | None:
    """The modality of the sweep's baseline (the models of it are compared with the baseline); None without one."""
    if sweep.baseline is None:
        return None
    try:
        return model_modality(sweep.baseline.model)
    except CompbenchError as err:
        raise InvalidInputError(f"{sweep.file}: baseline {sweep.baseline.model}: {err}") from None


# ---- rough time estimates (dry runs and the progress bar's ETA) ----------------------------------
MACS_PER_SECOND_PER_THREAD = 5e10  # fp32 forward throughput of a 2-core AVX-512 EPYC, per thread
JOB_OVERHEAD_S = 0.5  # counting, records
COMPRESS_S = 1.0  # per variant
TIMING_OVERHEAD_S = 5.0  # the GEMM peak before and after
VARIANT_SHARE = 0.7  # a variant's forward against the dense model's
ROUNDS = 30  # lock-step rounds a timed job typically needs (fewer when the budget runs out first)
QUALITY_EXAMPLES = {"text": (1500, 32), "speech": (3000, 1.0)}  # examples evaluated, their typical size
QUALITY_OVERHEAD_S = 2.0


@lru_cache(maxsize=256)
def _counted_macs(model: str, modality: str, size: float) -> int | None:
    """MACs of the dense model at one size and batch 1, counted on a meta copy (no weights); None if unknown."""
    import torch
    from transformers import AutoConfig, AutoModel

    from compbench.counting.macs import count_macs
    from compbench.models import PRESETS, InputSpec, ModelAdapter

    try:
        config = PRESETS.get(model).make_config() if model in PRESETS else AutoConfig.from_pretrained(model)
        with torch.device("meta"):
            meta = AutoModel.from_config(config)
        adapter = ModelAdapter(meta)
        return count_macs(meta, adapter.build_inputs(InputSpec(modality, size, 1), "meta")).total
    except Exception:  # an estimate only: a model that cannot be built here has no estimate
        return None


# an estimate needs no exact count at every size: a Transformer's MACs are a quadratic in its sequence length,
# so three counts per model (these sizes) give every other size (a sweep of 5,700 jobs over 350 sizes was
# planned in 3 minutes counting each; the fit is within a few per cent, the frames of audio being whole)
FIT_SIZES = {"text": (8, 64, 256), "speech": (1.0, 5.0, 10.0)}


def dense_macs(model: str, modality: str, size: float, batch: int) -> int | None:
    """About the MACs of the dense model at this size and batch, for an estimate: counted at the sizes of
    :data:`FIT_SIZES` (and at ``size`` itself when it is one of them), a quadratic through those counts
    elsewhere; None if the model cannot be counted here."""
    points = FIT_SIZES[modality]
    counts = [_counted_macs(model, modality, point) for point in points]
    if size in points or None in counts:  # a fitting size, or a model that takes fewer positions: counted
        counted = _counted_macs(model, modality, size)
        return None if counted is None else counted * batch
    estimate = sum(count * math.prod((size - other) / (point - other) for other in points if other != point)
                   for point, count in zip(points, counts, strict=True))
    return max(1, round(estimate)) * batch


def estimate_seconds(job: Job, threads: int) -> float:
    """A rough wall-clock estimate of one job on ``threads`` cores (scaled by measured jobs when known)."""
    if job.kind == "unresolved":
        return 5.0
    rate = MACS_PER_SECOND_PER_THREAD * max(1, job.measure.threads or threads)
    macs = dense_macs(job.model.model, job.modality, job.size, job.batch) or 10**10
    forward = macs / rate
    variants = len(job.variants)
    seconds = JOB_OVERHEAD_S + COMPRESS_S * variants
    if job.timed:  # lock-step rounds of the dense model and every variant (each about VARIANT_SHARE of dense)
        per_round = forward * (1 + VARIANT_SHARE * variants)
        if job.baseline is not None:  # the baseline model runs in the same rounds
            baseline = dense_macs(job.baseline.model, job.modality, job.size, job.batch) or macs
            per_round += baseline / rate
        rounds = min(ROUNDS, job.measure.budget / forward, job.measure.max_runs)
        seconds += TIMING_OVERHEAD_S + 2 * per_round + rounds * per_round
        if job.measure.memory:
            seconds += 2 * per_round
    if job.task:  # each variant's quality (the dense model's only in the dense job) and fidelity
        examples, typical = QUALITY_EXAMPLES[job.modality]
        examples = min(examples, job.measure.task_limit or examples)
        seconds += max(1, variants) * (examples * forward * typical / job.size + QUALITY_OVERHEAD_S)
    return seconds


def estimate_group_seconds(jobs: list[Job], threads: int) -> float:
    """A rough wall-clock estimate of running ``jobs`` (of one model at one size) as one timing group: the dense
    model timed once beside every variant, the baseline beside it only where the dense job is among them."""
    dense = next((job for job in jobs if job.kind == "dense"), None)
    variants = tuple(steps for job in jobs for steps in job.variants)
    if len(jobs) == 1 or jobs[0].kind == "unresolved":
        return sum(estimate_seconds(job, threads) for job in jobs)
    merged = replace(jobs[0], kind="variant", variants=variants, baseline=dense.baseline if dense else None)
    seconds = estimate_seconds(merged, threads)
    if dense is not None and dense.task:  # the dense model's own quality, evaluated only where its job runs
        seconds += estimate_seconds(replace(dense, measure=replace(dense.measure, latency=False)), threads)
    return seconds


@dataclass
class PlannedJob:
    """A job of a sweep, with its state in the results and whether this run runs it."""

    job: Job
    state: str  # "done" (its records are in the results), "failed" (in the failures file) or "pending"
    estimate_s: float  # its share of its group's estimate when the group runs
    will_run: bool = False


@dataclass
class PlannedGroup:
    """The jobs of one model at one input size, in plan order: the dense job, then the variant jobs. Those that
    will run are built and timed in one run; the rest keep the records they have."""

    jobs: list[PlannedJob]

    @property
    def to_run(self) -> list[PlannedJob]:
        return [p for p in self.jobs if p.will_run]

    @property
    def timed(self) -> bool:
        return any(p.job.timed for p in self.to_run)

    @property
    def measure(self) -> MeasureSettings:
        return self.jobs[0].job.measure

    @property
    def estimate_s(self) -> float:
        return sum(p.estimate_s for p in self.to_run)

    def label(self) -> str:
        """``hubert-base 10s: dense, head_pruning 0.25/0.5/0.75 (2 jobs)``: what this run of the group measures."""
        jobs = [p.job for p in self.to_run]
        if len(jobs) == 1:
            return jobs[0].label()
        return f"{jobs[0].model_label()}: " + "; ".join(job.what_label() for job in jobs) + f" ({len(jobs)} jobs)"


def group_key(job: Job) -> tuple:
    """Jobs with equal keys here are timed together: one model entry at one size. A dense job timed beside the
    sweep's baseline is a group of its own (the baseline model is not compressed for the variants beside it)."""
    if job.kind == "unresolved":
        return ("unresolved", id(job))
    return (json.dumps(job.model.describe(), sort_keys=True), job.modality, job.size, job.batch, job.task,
            job.baseline is not None)


def plan_groups(planned: list[PlannedJob], threads: int) -> list[PlannedGroup]:
    """The planned jobs as timing groups, in plan order; each job's estimate becomes its share of its group's
    (the group's jobs that will run, timed together)."""
    groups: dict[tuple, PlannedGroup] = {}
    for p in planned:
        groups.setdefault(group_key(p.job), PlannedGroup([])).jobs.append(p)
    for group in groups.values():
        running = group.to_run or group.jobs  # a group with nothing to run: what it would cost run again
        alone = [p.estimate_s for p in running]
        together = estimate_group_seconds([p.job for p in running], threads)
        for p, seconds in zip(running, alone, strict=True):
            p.estimate_s = together * seconds / (sum(alone) or 1)
    return list(groups.values())
