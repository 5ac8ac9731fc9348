"""How a sweep's timing groups are run: one small interface that every executor implements, and the local one.

An executor runs the groups it is given (each group's jobs that will run, in one run), calls
``started(group)`` as each begins and ``finished(group, outcomes)`` as each ends (an outcome per job),
and stops when ``finished`` returns True (fail-fast).
It never writes the results: ``finished`` does, in the driver. The sweep runner
(:mod:`compbench.sweep.run`) picks an executor by name; the Ray one is
:mod:`compbench.sweep.ray_executor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from compbench.sweep.execute import JobContext, JobOutcome, execute
from compbench.sweep.plan import PlannedGroup

Started = Callable[[PlannedGroup], None]
Finished = Callable[[PlannedGroup, list[JobOutcome]], bool]  # True: stop the sweep


class Executor(Protocol):
    def run(self, pending: list[PlannedGroup], context: JobContext, started: Started, finished: Finished) -> None:
        """Run ``pending`` (in order, as far as the executor keeps one) until done or ``finished`` says stop."""


class LocalExecutor:
    """Every group in this process, one after the other."""

    def run(self, pending: list[PlannedGroup], context: JobContext, started: Started, finished: Finished) -> None:
        for group in pending:
            started(group)
            if finished(group, execute([p.job for p in group.to_run], context)):
                break
