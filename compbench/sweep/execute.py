"""Running one sweep job in this process: fine-tune if asked (cached), measure, label the records.

Every executor calls :func:`execute`: the local one in the driver's process, the Ray one in a
worker; it runs the job (:func:`run_job`) and turns a failure into an outcome, so the sweep goes
on. A variant job measures its dense model too, interleaved in the same process, and keeps
only the variants' records: their ``speedup`` and ``speedup_ci95`` are same-run ratios, and
``baseline_latency_ms`` says what the dense model took in that run.
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
from compbench.environment import environment
from compbench.errors import CompbenchError, ModelLoadError
from compbench.measure import MeasureOptions, measure
from compbench.models import LoadedModel, load_model
from compbench.quality.finetune import REPORT_FILE, FinetuneOptions, finetune
from compbench.record import machine_label
from compbench.sweep.plan import Job
from compbench.tasks import find_task


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


def measure_options(job: Job, model: str, weights: str | None, context: JobContext) -> MeasureOptions:
    settings = job.measure
    sizes = {"seconds": [job.size]} if job.modality == "speech" else {"tokens": [int(job.size)]}
    return MeasureOptions(
        models=[model], compress=[list(steps) for steps in job.variants], weights=weights, batch=job.batch,
        device=settings.device, threads=settings.threads or context.threads, latency=settings.latency,
        memory=settings.memory, attn_implementation=settings.attn,
        timing=settings.timing_policy(),
        steady_allocator=settings.steady_allocator, task=job.task, data_root=context.data_root,
        task_limit=settings.task_limit, seed=settings.seed, runtimes=settings.runtimes,
        dense_quality=not job.variants,  # a variant job keeps the variants' records; the dense job has its quality
        baseline=job.baseline.model if job.baseline is not None else None,
        **sizes)


def run_job(job: Job, context: JobContext, progress: Callable[[str, float], None] | None = None) -> list[dict]:
    """Measure ``job`` here and return its records, labelled with the sweep and the job key."""
    start = time.perf_counter()
    if job.kind == "unresolved":
        raise ModelLoadError(job.problem or f"{job.model.model} could not be resolved")
    model, weights, finetuned = job.model.model, job.model.describe()["weights"], None
    if job.model.finetune:
        checkpoint, finetuned = ensure_finetuned(job, context.cache_dir, context.data_root, progress)
        model, weights = str(checkpoint), "pretrained"
    records = measure(measure_options(job, model, weights, context), progress, load=context.loader)
    # a variant job keeps its variants' records; a job timed beside the baseline, its model's (the baseline's record
    # is its own dense job's)
    kept = records[1:] if job.variants or job.baseline is not None else records
    seconds = time.perf_counter() - start
    for record in kept:
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


def execute(job: Job, context: JobContext, progress: Callable[[str, float], None] | None = None) -> JobOutcome:
    """Run one job and catch its failure (not an interrupt): the sweep goes on with the next."""
    start = time.perf_counter()
    try:
        records = run_job(job, context, progress)
    except Exception as err:  # any failure of one job is recorded; the others still run
        message = str(err) if isinstance(err, CompbenchError) else f"{type(err).__name__}: {err}"
        tail = "".join(traceback.format_exception(err)[-12:])
        machine = machine_label({"environment": environment(), "threads": context.threads or job.measure.threads,
                                 "device": job.measure.device})
        return JobOutcome(job.key, None, time.perf_counter() - start, type(err).__name__, message, tail, machine)
    return JobOutcome(job.key, records, time.perf_counter() - start)
