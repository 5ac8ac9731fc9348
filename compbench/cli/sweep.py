"""``compbench sweep``: run a declarative sweep file, resumably, locally or on a Ray cluster."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from compbench.cache import cache_dir
from compbench.cli.tables import Column, console, output_width, print_table
from compbench.outputs import check_output_file
from compbench.sweep.execute import JobOutcome, finetune_key
from compbench.sweep.plan import PlannedGroup, PlannedJob
from compbench.sweep.run import EXECUTORS, SweepEvents, SweepOptions, SweepReport, run_sweep


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(
        name, help="run a sweep file: every model, compressor and amount; resumable; local or on Ray",
        description="Run the jobs of a sweep file (YAML, version 1) and append their records to RESULTS. "
                    "A rerun skips the jobs already there; failed jobs go to RESULTS' .failures.jsonl.")
    p.add_argument("file", metavar="FILE", help="the sweep file")
    p.add_argument("--out", required=True, metavar="RESULTS.jsonl", help="the results file (created or resumed)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="run jobs in this process (local) or as Ray tasks (ray)")
    p.add_argument("--address", metavar="ADDR", help="a Ray cluster to join (default: start a local instance)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs, their state and an estimate of their time")
    p.add_argument("--retry-failed", action="store_true", help="run the jobs that failed before again")
    p.add_argument("--force", action="store_true", help="run every job again, replacing its records")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first job that fails")
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="fine-tuned checkpoints (default: $COMPBENCH_CACHE_DIR or ~/.cache/compbench)")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


class _ProgressEvents(SweepEvents):
    """A progress bar (jobs done, failed and left, ETA) on a terminal; a line per job otherwise."""

    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.fields[done]} done · {task.fields[failed]} failed · "
                                       "{task.fields[left]} left"),
                            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            console=console, transient=True, disable=not console.is_terminal)
        self.task = None
        self.done = self.failed = self.total = 0
        self.group_size = 1

    def planned(self, report: SweepReport) -> None:
        jobs = report.to_run
        self.total = len(jobs)
        self.bar.start()
        self.task = self.bar.add_task(f"sweep {report.sweep.name}", total=sum(p.estimate_s for p in jobs) or 1,
                                      done=0, failed=0, left=len(jobs))

    def group_started(self, group: PlannedGroup) -> None:
        self.group_size = len(group.to_run)
        self.bar.update(self.task, description=group.label())

    def job_finished(self, planned: PlannedJob, outcome: JobOutcome) -> None:
        self.done += outcome.ok
        self.failed += not outcome.ok
        self.bar.update(self.task, advance=planned.estimate_s, done=self.done, failed=self.failed,
                        left=self.total - self.done - self.failed)
        count = f"[{self.done + self.failed}/{self.total}]"
        if outcome.ok:
            together = f"timed with {self.group_size - 1} more, " if self.group_size > 1 else ""
            line = f"{count} ok     {planned.job.label()} ({together}{outcome.seconds:.1f} s)"
        else:
            line = f"{count} FAILED {planned.job.label()}: {outcome.error}"
        self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.bar.stop()


TABLE_ROWS = 200  # a longer plan is printed as plain lines: laying out a table of 5,700 jobs took 25 s


def _print_plan(report: SweepReport, options: SweepOptions) -> None:
    title = f"sweep {report.sweep.name} ({report.sweep.file}) -> {report.results}"
    rows = [(str(index), f"{planned.job.key}  {planned.job.label()}", planned.state,
             "yes" if planned.will_run else "no", _duration(planned.estimate_s))
            for index, planned in enumerate(report.planned, start=1)]
    out = console(sys.stdout, output_width())
    if len(rows) > TABLE_ROWS:
        lines = [title, "#  job  state  runs  estimate"] + ["  ".join(row) for row in rows]
        out.print(Text("\n".join(lines)), soft_wrap=True)
    else:
        print_table(out, title, [Column("#", right=True), Column("job", wraps=True), Column("state"),
                                 Column("runs", drop=1), Column("estimate", right=True)], rows)
    to_run = report.to_run
    states = {state: sum(p.state == state for p in report.planned) for state in ("done", "failed", "pending")}
    out.print(f"{len(report.planned)} jobs: {states['done']} done, {states['failed']} failed, "
              f"{states['pending']} pending; {len(to_run)} would run in {len(report.groups_to_run)} timing "
              f"group{'s' if len(report.groups_to_run) != 1 else ''}, about "
              f"{_duration(sum(p.estimate_s for p in to_run))} ({report.executor} executor).")
    finetuned = {finetune_key(p.job.model.describe()): p.job.model for p in to_run if p.job.model.finetune}
    for key, entry in finetuned.items():
        path = cache_dir(options.cache_dir) / "finetune" / key
        state = f"cached in {path}" if path.is_dir() else f"not cached: runs first ({path}), not in the estimate"
        out.print(Text(f"fine-tune {entry.model} on {entry.finetune}: {state}"))


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out)
    options = SweepOptions(out=args.out, executor=args.executor, address=args.address, dry_run=args.dry_run,
                           retry_failed=args.retry_failed, force=args.force, fail_fast=args.fail_fast,
                           data_root=args.data_root, cache_dir=args.cache_dir)
    if args.dry_run:
        _print_plan(run_sweep(args.file, options), options)
        return 0
    events = _ProgressEvents(Console(stderr=True))
    try:
        report = run_sweep(args.file, options, events)
    except KeyboardInterrupt:
        events.close()  # before the message, so the bar does not draw over it
        print(f"compbench: interrupted after {events.done + events.failed} of {events.total} jobs; their records "
              f"are in {args.out}; run the same command to resume", file=sys.stderr)
        return 130
    events.close()
    skipped = sum(not p.will_run for p in report.planned)
    earlier_failed = sum(p.state == "failed" and not p.will_run for p in report.planned)
    print(f"sweep {report.sweep.name}: {len(report.outcomes) - len(report.failed)} jobs ran, "
          f"{len(report.failed)} failed, {skipped} skipped (already in {report.results})"
          + (f", {earlier_failed} failed earlier (--retry-failed runs them)" if earlier_failed else "")
          + f"; {_duration(report.seconds)}.")
    if report.failed:
        print(f"failures are in {report.failures}; --retry-failed runs them again", file=sys.stderr)
    if report.stopped_early:
        print("stopped at the first failure (--fail-fast)", file=sys.stderr)
    return 1 if report.failed else 0
