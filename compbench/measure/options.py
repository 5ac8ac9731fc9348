"""What ``compbench measure`` can set (:class:`MeasureOptions`, with its defaults), and the callables a
caller may hand :func:`~compbench.measure.measure`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from compbench.compression.pipeline import Step
from compbench.models import LoadedModel
from compbench.timing.wallclock import TimingPolicy

DEFAULT_MODELS = ("hubert-base", "bert-base")
DEFAULT_SECONDS = (10.0,)
DEFAULT_TOKENS = (128,)

# (description, fraction done) for progress displays
ProgressCallback = Callable[[str, float], None]
# (name, weights, attn_implementation, seed) -> LoadedModel; load_model unless a caller caches
ModelLoader = Callable[[str, str | None, str, int], LoadedModel]


@dataclass
class MeasureOptions:
    """Everything ``compbench measure`` can set, with its defaults."""

    models: Sequence[str] = DEFAULT_MODELS
    compress: Sequence[Sequence[Step]] = ()  # pipelines; the dense model is always measured too
    weights: str | None = None  # None: random for presets, pretrained for checkpoints
    seconds: Sequence[float] = DEFAULT_SECONDS  # input sizes for speech models
    tokens: Sequence[int] = DEFAULT_TOKENS  # input sizes for text models
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None  # None: OMP_NUM_THREADS where set, else every core this process may use
    latency: bool = True
    memory: bool = True
    audit: bool = False
    attn_implementation: str = "sdpa"
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    steady_allocator: bool = True  # see compbench.timing.allocator
    task: str | None = None  # adds quality (and, for variants, fidelity) to every record
    data_root: str | None = None
    task_limit: int | None = None  # at most this many examples per split (quick runs; recorded)
    dense_quality: bool = True  # False: skip the dense model's quality (its hidden states still feed fidelity)
    per_example: bool = False  # also measure every model example by example on the task's evaluation split
    runtimes: Sequence[str] = ("eager",)  # each sized model is timed under each (compbench.runtimes), interleaved
    seed: int = 0
