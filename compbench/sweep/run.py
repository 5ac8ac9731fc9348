"""Running a sweep: plan it, skip the jobs already in the results, run the rest a timing group at a time,
write as each group ends.

:func:`run_sweep` is the plain public function behind ``compbench sweep``. The jobs of one model at one
size are timed together (:class:`~compbench.sweep.plan.PlannedGroup`), and a group's records are
appended in one write (atomically, under the file lock) as soon as it ends, so an interrupted sweep, even
by ``kill -9``, keeps every finished group exactly once, never half a group and no partial line, and a
rerun resumes it, running a group again only for its jobs that are missing. A job that fails is written
to the failures file beside the results and the sweep goes on; ``retry_failed`` runs those again,
``force`` runs every job again (replacing its records).
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
from compbench.sweep.plan import PlannedGroup, PlannedJob, estimate_seconds, plan_groups, plan_jobs
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

    def group_started(self, group: PlannedGroup) -> None: ...

    def job_finished(self, planned: PlannedJob, outcome: JobOutcome) -> None: ...


@dataclass
class SweepReport:
    sweep: Sweep
    results: Path
    failures: Path
    planned: list[PlannedJob]
    groups: list[PlannedGroup]
    executor: str = "local"
    outcomes: list[JobOutcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False  # fail_fast stopped it after a failure

    @property
    def to_run(self) -> list[PlannedJob]:
        return [p for p in self.planned if p.will_run]

    @property
    def groups_to_run(self) -> list[PlannedGroup]:
        return [group for group in self.groups if group.to_run]

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
    done = {r["job"] for r in records if "job" in r}
    failed = {f["job"] for f in failures}
    threads = default_threads()
    planned = []
    for job in jobs:
        state = "done" if job.key in done else "failed" if job.key in failed else "pending"
        will_run = options.force or state == "pending" or (state == "failed" and options.retry_failed)
        planned.append(PlannedJob(job, state, estimate_seconds(job, threads), will_run))
    groups = plan_groups(planned, threads)
    _calibrate(planned, records)
    if any(p.will_run and p.job.task for p in planned):
        resolve_data_root(options.data_root)  # a missing data root is refused now, not once per job
    return SweepReport(sweep, results, failures_path(results), planned, groups, options.executor)


def _calibrate(planned: list[PlannedJob], records: list[dict]) -> None:
    """Scale the estimates by how long this sweep's finished runs took against their estimates: a run's
    ``job_seconds`` (every record of a group run has the run's) against the estimates of the jobs it ran."""
    estimates = {p.job.key: p.estimate_s for p in planned}
    runs: dict[str, tuple[float, set[str]]] = {}
    for record in records:
        if record.get("job") in estimates and record.get("job_seconds") and record.get("run_id"):
            seconds, keys = runs.setdefault(record["run_id"], (record["job_seconds"], set()))
            keys.add(record["job"])
    pairs = [(seconds, sum(estimates[key] for key in keys)) for seconds, keys in runs.values()]
    if pairs:
        scale = sum(actual for actual, _ in pairs) / (sum(estimate for _, estimate in pairs) or 1)
        for p in planned:
            p.estimate_s *= scale


def _write_outcomes(report: SweepReport, group: PlannedGroup, outcomes: list[JobOutcome]) -> None:
    """The driver alone writes: the group's records appended in one write (replacing a re-run job's), and each
    failure recorded."""
    running = group.to_run
    ok = [(planned, outcome) for planned, outcome in zip(running, outcomes, strict=True) if outcome.ok]
    if ok:
        keys = {planned.job.key for planned, _ in ok}
        append_records(report.results, [record for _, outcome in ok for record in outcome.records], replace_jobs=keys)
        clear_failures(report.results, keys)
        for planned, _ in ok:
            planned.state = "done"
    for planned, outcome in zip(running, outcomes, strict=True):
        if outcome.ok:
            continue
        job = planned.job
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

    def finished(group: PlannedGroup, outcomes: list[JobOutcome]) -> bool:
        """Write the group's outcomes; True when the sweep must stop (fail-fast)."""
        running = group.to_run
        _write_outcomes(report, group, outcomes)
        for planned, outcome in zip(running, outcomes, strict=True):
            report.outcomes.append(outcome)
            events.job_finished(planned, outcome)
        report.stopped_early = options.fail_fast and not all(outcome.ok for outcome in outcomes)
        return report.stopped_early

    executor = EXECUTORS[options.executor](options.address)
    try:
        executor.run(report.groups_to_run, context, events.group_started, finished)
    finally:
        report.seconds = time.perf_counter() - start
    return report
