"""A job: one record in the making, carried through the stages: a subject at one size under one runtime
(or measured example by example), with the inputs it is timed on and the dense job it is compared with."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.models import LoadedModel
from compbench.record import compression_label


@dataclass
class Job:
    """One record in the making: a subject at one size under one runtime (or per example)."""

    loaded: LoadedModel
    model: nn.Module  # the dense model, or a compressed variant of it
    adapter: ModelAdapter
    spec: InputSpec | None  # None: measured per example on ``examples``
    inputs: dict
    record: dict
    dense: Job | None = None  # for a variant: the dense job it is compared with
    baseline: Job | None = None  # for another model's dense job: the --baseline model's job it is compared with
    examples: list[dict] | None = None  # per-example jobs: one input dict per evaluation example
    runtime: str = "eager"  # what runs the model (compbench.runtimes); per-example jobs run eager
    example_macs: list[int] | None = None  # per-example jobs: each example's MACs
    subject: int = 0  # which of its model's subjects: 0 the dense model, i the variant of the i-th pipeline

    def label(self) -> str:
        """The model, the variant and the size, as progress names a sized job: ``minilm-l6 head_pruning=0.5
        16tok``."""
        return f"{self.loaded.name} {compression_label(self.record)} {self.spec.label()}"

    @property
    def reference(self) -> Job | None:
        """What this job's speedup is against: a variant's dense job, or another model's baseline job."""
        return self.dense or self.baseline
