"""How a sweep's jobs are run: one small interface that every executor implements, and the local one.

An executor runs the pending jobs it is given, calls ``started(planned)`` as each begins and
``finished(planned, outcome)`` as each ends, and stops when ``finished`` returns True (fail-fast).
It never writes the results: ``finished`` does, in the driver. The sweep runner
(:mod:`compbench.sweep.run`) picks an executor by name; the Ray one is
:mod:`compbench.sweep.ray_executor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from compbench.sweep.execute import JobContext, JobOutcome, execute
from compbench.sweep.plan import PlannedJob

Started = Callable[[PlannedJob], None]
Finished = Callable[[PlannedJob, JobOutcome], bool]  # True: stop the sweep


class Executor(Protocol):
    def run(self, pending: list[PlannedJob], context: JobContext, started: Started, finished: Finished) -> None:
        """Run ``pending`` (in order, as far as the executor keeps one) until done or ``finished`` says stop."""


class LocalExecutor:
    """Every job in this process, one after the other."""

    def run(self, pending: list[PlannedJob], context: JobContext, started: Started, finished: Finished) -> None:
        for planned in pending:
            started(planned)
            if finished(planned, execute(planned.job, context)):
                break
