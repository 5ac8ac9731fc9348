"""Running one timing group of a sweep in this process: fine-tune if asked (cached), measure, label the records.

Every executor calls :func:`execute`: the local one in the driver's process, the Ray one in a
worker; it runs the group's jobs (:func:`run_group`) and turns a failure into an outcome for each, so
the sweep goes on. The dense model and the variants of every job in the group are measured in one run,
interleaved (``measure`` with every job's pipelines), and each job keeps the records of what it asked
for: a variant's ``speedup`` and ``speedup_ci95`` are same-run ratios, and ``baseline_latency_ms`` says
what the dense model took in that run.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from compbench import __version__
from compbench.cache import cache_dir
from compbench.environment import environment, memory_bytes
from compbench.errors import CompbenchError, ModelLoadError
from compbench.measure import MeasureOptions, measure_subjects
from compbench.models import LoadedModel, load_model
from compbench.quality.finetune import REPORT_FILE, FinetuneOptions, finetune
from compbench.record import machine_label
from compbench.sweep.plan import Job
from compbench.tasks import find_task
from compbench.timing.memory import weight_bytes


def finetune_key(entry_description: dict) -> str:
    """Key of a fine-tuned checkpoint: source model, weights, task (with its version), options, compbench."""
    finetune_spec = entry_description["finetune"]
    payload = {"model": entry_description["model"], "weights": entry_description["weights"],
               "task": finetune_spec["task"], "task_version": find_task(finetune_spec["task"]).version,
               "options": finetune_spec["options"], "compbench": __version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def ensure_finetuned(job: Job, cache_dir: Path, data_root: str | None,
                     progress: Callable[[str, float], None] | None = None) -> tuple[Path, dict]:
    """The fine-tuned checkpoint of ``job``'s model, trained now unless the cache has it; and its report.

    A file lock per key lets parallel jobs (Ray workers) wait for one fine-tune instead of
    each running it."""
    description = job.model.describe()
    key = finetune_key(description)
    out_dir = cache_dir / "finetune" / key
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f".{key}.lock")):
        cached = (out_dir / REPORT_FILE).is_file()
        if not cached:
            options = FinetuneOptions(**description["finetune"]["options"], weights=description["weights"],
                                      data_root=data_root)
            finetune(job.model.model, job.model.finetune, out_dir, options, progress)
    report = json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))
    return out_dir, {"source_model": job.model.model, "task": report["task"], "task_version": report["task_version"],
                     "key": key, "options": description["finetune"]["options"], "best_epoch": report["best_epoch"],
                     "metric": report["metric"], "dev_value": report[f"dev_{report['metric']}"],
                     "train_seconds": report.get("seconds"),
                     "cached": cached}


@dataclass
class CachedLoader:
    """Keeps the last loaded model, so the jobs of one model load it once.

    Safe because compressors never modify their input and measure only reads the dense model;
    the model is handed out on the CPU, as load_model gives it."""

    _key: tuple | None = None
    _loaded: LoadedModel | None = None
    loads: int = 0

    def __call__(self, name: str, weights: str | None, attn_implementation: str, seed: int) -> LoadedModel:
        key = (name, weights, attn_implementation, seed)
        if key != self._key:
            self._key, self._loaded = None, None  # free the previous model before loading the next
            self._loaded = load_model(name, weights, attn_implementation, seed)
            self._key = key
            self.loads += 1
        self._loaded.model.to("cpu")
        return self._loaded


@dataclass
class JobContext:
    """What a job needs from the machine it runs on (not part of its key)."""

    data_root: str | None = None
    cache_dir: Path = field(default_factory=cache_dir)
    loader: CachedLoader = field(default_factory=CachedLoader)
    threads: int | None = None  # overrides the sweep's threads when it set none (Ray: the CPUs a task holds)


def measure_options(jobs: list[Job], model: str, weights: str | None, context: JobContext) -> MeasureOptions:
    """What ``measure`` is asked for a group's jobs: every variant job's pipelines, in order; the dense model's
    quality, and the baseline beside it, only where the dense job is among them."""
    job = jobs[0]
    dense = next((j for j in jobs if j.kind == "dense"), None)
    settings = job.measure
    sizes = {"seconds": [job.size]} if job.modality == "speech" else {"tokens": [int(job.size)]}
    return MeasureOptions(
        models=[model], compress=[list(steps) for j in jobs for steps in j.variants], weights=weights,
        batch=job.batch,
        device=settings.device, threads=settings.threads or context.threads, latency=settings.latency,
        memory=settings.memory, attn_implementation=settings.attn,
        timing=settings.timing_policy(),
        steady_allocator=settings.steady_allocator, task=job.task, data_root=context.data_root,
        task_limit=settings.task_limit, seed=settings.seed, runtimes=settings.runtimes,
        dense_quality=dense is not None,  # the dense job has the dense model's quality; variant jobs, only theirs
        baseline=dense.baseline.model if dense is not None and dense.baseline is not None else None,
        **sizes)


def _per_example(record: dict) -> bool:
    return record["input"]["kind"] == "examples"


MEMORY_SHARE = 0.4  # of this machine's memory, for the models one run holds (the dense model and its variants)


def runs_of(jobs: list[Job], model_bytes: int, memory: int | None) -> list[list[Job]]:
    """``jobs`` (the dense job first, if any) split into consecutive runs whose models fit in
    :data:`MEMORY_SHARE` of ``memory``: a run holds the dense model and every variant of its jobs, each counted
    as the dense model's size (a job's variants stay in one run). One run where the memory is not known."""
    if memory is None:
        return [jobs]
    room = max(1, int(MEMORY_SHARE * memory / max(1, model_bytes)) - 1)  # variants beside the dense model
    runs: list[list[Job]] = [[]]
    held = 0
    for job in jobs:
        if held and held + len(job.variants) > room:  # the dense job goes with the first variants
            runs.append([])
            held = 0
        runs[-1].append(job)
        held += len(job.variants)
    return runs


def run_group(jobs: list[Job], context: JobContext,
              progress: Callable[[str, float], None] | None = None) -> dict[str, list[dict]]:
    """Measure ``jobs`` (of one model at one size) here and return each job's records by its key, labelled with
    the sweep and the job key: in one run, or in as few runs as this machine's memory holds
    (:func:`runs_of`). ``job_seconds`` is the wall-clock of the run that measured the job."""
    first = jobs[0]
    if first.kind == "unresolved":
        raise ModelLoadError(first.problem or f"{first.model.model} could not be resolved")
    model, weights, finetuned = first.model.model, first.model.describe()["weights"], None
    if first.model.finetune:
        checkpoint, finetuned = ensure_finetuned(first, context.cache_dir, context.data_root, progress)
        model, weights = str(checkpoint), "pretrained"
    kept: dict[str, list[dict]] = {}
    settings = first.measure
    loaded = context.loader(model, weights, settings.attn, settings.seed)  # kept by the loader for the runs
    for run in runs_of(jobs, weight_bytes(loaded.model), memory_bytes()):
        kept.update(_run_once(run, model, weights, finetuned, context, progress))
    return kept


def _run_once(jobs: list[Job], model: str, weights: str | None, finetuned: dict | None, context: JobContext,
              progress: Callable[[str, float], None] | None) -> dict[str, list[dict]]:
    """One ``measure`` run of ``jobs``: each job's records by its key."""
    start = time.perf_counter()
    measured = measure_subjects(measure_options(jobs, model, weights, context), progress, load=context.loader)
    measured = [item for item in measured if item.model == model]  # not the baseline's records
    dense = next((job for job in jobs if job.kind == "dense"), None)
    owners = [dense] + [job for job in jobs for _ in job.variants]  # subject i's job (0: the dense model)
    # the dense model measured example by example is the reference of the variants measured so (early exit): it
    # goes with the first of their jobs, as when that job runs alone
    per_example = next((owners[item.subject] for item in measured if item.subject and _per_example(item.record)), dense)
    kept: dict[str, list[dict]] = {job.key: [] for job in jobs}
    for item in measured:
        owner = per_example if item.subject == 0 and _per_example(item.record) else owners[item.subject]
        if owner is not None:  # None: the dense model's sized records, its job not asked for
            kept[owner.key].append(item.record)
    seconds = time.perf_counter() - start
    for job in jobs:
        for record in kept[job.key]:
            record.update(sweep=job.sweep, job=job.key, job_seconds=round(seconds, 3))
            if job.model.label:
                record["label"] = job.model.label
            if finetuned:
                record["model"] = job.model.model  # as the sweep names it; checkpoint says where it lives
                record["finetune"] = finetuned
    return kept


@dataclass
class JobOutcome:
    """How one job ended: its records, or the failure and where it happened."""

    key: str
    records: list[dict] | None  # None when the job failed
    seconds: float
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    machine: str | None = None  # where a failed job ran (a Ray worker's node, not the driver)

    @property
    def ok(self) -> bool:
        return self.records is not None


def execute(jobs: list[Job], context: JobContext,
            progress: Callable[[str, float], None] | None = None) -> list[JobOutcome]:
    """Run one group's jobs and catch its failure (not an interrupt): each job's outcome, in order. A group of
    several jobs that fails is run again a job at a time, so a variant that cannot be built (or a model that
    cannot be measured with it) fails its own job alone; the sweep goes on with the next group."""
    start = time.perf_counter()
    try:
        records = run_group(jobs, context, progress)
    except Exception as err:  # any failure of one group is recorded; the others still run
        if len(jobs) > 1:
            return [outcome for job in jobs for outcome in execute([job], context, progress)]
        message = str(err) if isinstance(err, CompbenchError) else f"{type(err).__name__}: {err}"
        tail = "".join(traceback.format_exception(err)[-12:])
        machine = machine_label({"environment": environment(), "threads": context.threads or jobs[0].measure.threads,
                                 "device": jobs[0].measure.device})
        seconds = time.perf_counter() - start
        return [JobOutcome(job.key, None, seconds, type(err).__name__, message, tail, machine) for job in jobs]
    seconds = time.perf_counter() - start
    return [JobOutcome(job.key, records[job.key], seconds) for job in jobs]
