"""Running a sweep: plan it, skip the jobs already in the results, run the rest, write as each ends.

:func:`run_sweep` is the plain public function behind ``compbench sweep``. Each job's records are
appended (atomically, under the file lock) as soon as it ends, so an interrupted sweep, even by
``kill -9``, keeps every finished job exactly once and no partial line, and a rerun resumes it. A
job that fails is written to the failures file beside the results and the sweep goes on;
``retry_failed`` runs those again, ``force`` runs every job again (replacing its records).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from compbench.cache import cache_dir
from compbench.errors import InvalidInputError
from compbench.store import (
    append_records,
    clear_failures,
    existing_records,
    failures_path,
    read_failures,
    record_failure,
)
from compbench.sweep.execute import JobContext, JobOutcome
from compbench.sweep.executor import Executor, LocalExecutor
from compbench.sweep.plan import PlannedJob, estimate_seconds, plan_jobs
from compbench.sweep.ray_executor import RayExecutor
from compbench.sweep.schema import Sweep, load_sweep
from compbench.tasks import DATA_ROOT_ENV, resolve_data_root
from compbench.timing.device import default_threads

# --executor NAME -> the executor, built with the sweep's --address (a Ray cluster; the local one takes none)
EXECUTORS: dict[str, Callable[[str | None], Executor]] = {"local": lambda address: LocalExecutor(),
                                                          "ray": RayExecutor}


@dataclass
class SweepOptions:
    """Everything ``compbench sweep`` can set besides the sweep file."""

    out: str | Path
    executor: str = "local"
    address: str | None = None  # a Ray cluster (ray.init(address=...)); None: a local Ray instance
    dry_run: bool = False
    retry_failed: bool = False
    force: bool = False
    fail_fast: bool = False
    data_root: str | None = None
    cache_dir: str | Path | None = None  # fine-tuned checkpoints; default $COMPBENCH_CACHE_DIR or ~/.cache/compbench


class SweepEvents:
    """What a sweep reports while it runs (the CLI draws a progress bar from these); no-ops here."""

    def planned(self, report: SweepReport) -> None: ...

    def job_started(self, planned: PlannedJob) -> None: ...

    def job_finished(self, planned: PlannedJob, outcome: JobOutcome) -> None: ...


@dataclass
class SweepReport:
    sweep: Sweep
    results: Path
    failures: Path
    planned: list[PlannedJob]
    executor: str = "local"
    outcomes: list[JobOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False  # fail_fast stopped it after a failure

    @property
    def to_run(self) -> list[PlannedJob]:
        return [p for p in self.planned if p.will_run]

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


def plan_sweep(sweep_file: str | Path, options: SweepOptions) -> SweepReport:
    """Check the sweep file and the results file, and say what each job's state is and what will run.

    Everything that can be refused is refused here, before any job runs."""
    if options.executor not in EXECUTORS:
        raise InvalidInputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {options.executor!r}")
    if options.address and options.executor != "ray":
        raise InvalidInputError("--address is the address of a Ray cluster: use it with --executor ray")
    sweep = load_sweep(sweep_file)
    jobs = plan_jobs(sweep)
    results = Path(options.out)
    records = existing_records(results)  # a corrupt or foreign results file is refused before anything runs
    failures = read_failures(results)
    done_seconds = {r["job"]: r.get("job_seconds") for r in records if "job" in r}
    failed = {f["job"] for f in failures}
    threads = default_threads()
    planned = []
    for job in jobs:
        state = "done" if job.key in done_seconds else "failed" if job.key in failed else "pending"
        will_run = options.force or state == "pending" or (state == "failed" and options.retry_failed)
        planned.append(PlannedJob(job, state, estimate_seconds(job, threads), will_run))
    _calibrate(planned, done_seconds)
    if any(p.will_run and p.job.task for p in planned):
        resolve_data_root(options.data_root)  # a missing data root is refused now, not once per job
    return SweepReport(sweep, results, failures_path(results), planned, options.executor)


def _calibrate(planned: list[PlannedJob], done_seconds: dict[str, float | None]) -> None:
    """Scale the estimates by how long this sweep's finished jobs took against their estimates."""
    pairs = [(done_seconds[p.job.key], p.estimate_s) for p in planned if done_seconds.get(p.job.key)]
    if pairs:
        scale = sum(actual for actual, _ in pairs) / sum(estimate for _, estimate in pairs)
        for p in planned:
            p.estimate_s *= scale


def _write_outcome(report: SweepReport, planned: PlannedJob, outcome: JobOutcome) -> None:
    """The driver alone writes: records appended (replacing a re-run job's), or the failure recorded."""
    job = planned.job
    if outcome.ok:
        append_records(report.results, outcome.records, replace_jobs={job.key})
        clear_failures(report.results, {job.key})
        planned.state = "done"
        return
    record_failure(report.results, {
        "sweep": job.sweep, "job": job.key, "label": job.label(), "config": job.config(),
        "error_type": outcome.error_type, "error": outcome.error, "traceback": outcome.traceback,
        "job_seconds": round(outcome.seconds, 3), "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": outcome.machine,
    })
    planned.state = "failed"


def run_sweep(sweep_file: str | Path, options: SweepOptions, events: SweepEvents | None = None) -> SweepReport:
    """Run the sweep's pending jobs (all with ``force``; failed ones too with ``retry_failed``)."""
    events = events or SweepEvents()
    report = plan_sweep(sweep_file, options)
    events.planned(report)
    if options.dry_run or not report.to_run:
        return report
    start = time.perf_counter()
    context = JobContext(data_root=options.data_root or os.environ.get(DATA_ROOT_ENV),
                         cache_dir=cache_dir(options.cache_dir))

    def finished(planned: PlannedJob, outcome: JobOutcome) -> bool:
        """Write the outcome; True when the sweep must stop (fail-fast)."""
        _write_outcome(report, planned, outcome)
        report.outcomes.append(outcome)
        events.job_finished(planned, outcome)
        report.stopped_early = options.fail_fast and not outcome.ok
        return report.stopped_early

    executor = EXECUTORS[options.executor](options.address)
    try:
        executor.run(report.to_run, context, events.job_started, finished)
    finally:
        report.seconds = time.perf_counter() - start
    return report
