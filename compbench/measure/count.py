"""Stage 3, count: exact parameters of every subject, and exact MACs of every subject whose cost does not
depend on the input, at every size (counted on meta tensors: no weights are touched, nothing runs);
with ``--audit``, fvcore's and thop's counts beside compbench's."""

from __future__ import annotations

from dataclasses import dataclass

from compbench.architectures.families import InputSpec
from compbench.counting.audit import audit_counts
from compbench.counting.macs import MacCount, count_macs
from compbench.counting.params import ParamCount, count_params
from compbench.measure.jobs import Job
from compbench.measure.resolve import Run
from compbench.measure.variants import ModelGroup


@dataclass
class Counts:
    """Parameters per subject (size-free), and MACs per size and subject (absent for input-dependent ones)."""

    params: list[ParamCount]
    macs: dict[InputSpec, dict[int, MacCount]]


def count(group: ModelGroup) -> Counts:
    """Every subject's params, and its MACs at each of the group's sizes."""
    params = [count_params(s.model, s.adapter.component_of) for s in group.subjects]
    macs = {spec: {position: count_macs(s.model, s.adapter.build_inputs(spec, "meta"), s.adapter.component_of)
                   for position, s in enumerate(group.subjects) if not s.dynamic}
            for spec in group.specs}
    return Counts(params, macs)


def audit(jobs: list[Job], run: Run) -> None:
    """Each sized job's counts by fvcore and thop, beside compbench's (per-example jobs are counted on real
    inputs, example by example: not audited)."""
    audited = {}  # a model at a size is audited once, whichever runtimes time it
    for index, job in enumerate(jobs):
        if job.examples is None:
            key = (id(job.model), job.spec)
            if key not in audited:
                run.progress(f"auditing counters on {job.label()}", 0.2 + 0.1 * index / len(jobs))
                audited[key] = audit_counts(job.model, job.inputs, job.record["macs"])
            job.record["audit"] = {name: dict(found) for name, found in audited[key].items()}
