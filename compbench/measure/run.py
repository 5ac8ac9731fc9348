"""The measure run: its stages in the order they run.

:func:`measure` is the plain public function behind ``compbench measure``.
"""

from __future__ import annotations

from dataclasses import dataclass

from compbench.measure.count import audit, count
from compbench.measure.evaluate import evaluate, task_data
from compbench.measure.latency import steady_process, time_jobs
from compbench.measure.options import MeasureOptions, ModelLoader, ProgressCallback
from compbench.measure.per_example import per_example_jobs
from compbench.measure.records import compare_with_baseline, sized_jobs
from compbench.measure.resolve import resolve
from compbench.measure.variants import build_variants
from compbench.models import load_model
from compbench.timing.device import cpu_threads


def _silent(description: str, fraction: float) -> None:
    return None


@dataclass(frozen=True)
class MeasuredRecord:
    """A record and what it measured: the model as named in the options, and which of its subjects (0: the dense
    model; i: the variant of the i-th pipeline in ``options.compress``)."""

    model: str
    subject: int
    record: dict


def measure(options: MeasureOptions | None = None, progress: ProgressCallback | None = None,
            load: ModelLoader = load_model) -> list[dict]:
    """Measure every model, and each compressed variant of it, at every input size; one record each.

    All arguments are checked and all models loaded before anything is timed, so bad input
    fails fast. Each pipeline in ``options.compress`` yields a variant measured beside its dense
    model; latency is measured in lock-step rounds over all (model, variant, size) triples, and
    each variant gets its speedup over the dense model with a 95 % interval from the paired rounds (and with
    ``options.baseline``, every other model its speedup over the baseline model, measured first).
    With ``options.task``, every record gets ``quality`` and every variant's ``fidelity``.
    ``load`` loads a model (a caller may pass a cached loader; it must not hand out a model that
    anything else modifies).
    """
    return [measured.record for measured in measure_subjects(options, progress, load)]


def measure_subjects(options: MeasureOptions | None = None, progress: ProgressCallback | None = None,
                     load: ModelLoader = load_model) -> list[MeasuredRecord]:
    """:func:`measure`, each record with the model and the subject it measured (a sweep hands each pipeline's
    records to the job that asked for it)."""
    run = resolve(options or MeasureOptions(), progress or _silent)
    steady_process(run)
    with cpu_threads(run.threads):
        jobs = []
        for position, name in enumerate(run.models):
            group = build_variants(name, run, load, position)
            counts = count(group)
            data = task_data(group, run)
            qualities = evaluate(group, data, run) if data else None
            jobs += sized_jobs(group, counts, qualities, run)
            jobs += per_example_jobs(group, counts, qualities, data, run)
        compare_with_baseline(jobs, run)
        if run.options.audit:
            audit(jobs, run)
        if run.options.latency:
            time_jobs(jobs, run)
    run.progress("done", 1.0)
    return [MeasuredRecord(job.loaded.name, job.subject, job.record) for job in jobs]
