"""What ``compbench measure`` can set (:class:`MeasureOptions`, with its defaults), and the callables a
caller may hand :func:`~compbench.measure.measure`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from compbench.compression.pipeline import Step
from compbench.compression.spec import parse_spec
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
    seconds: Sequence[float] | None = None  # input sizes for speech models; None: DEFAULT_SECONDS
    tokens: Sequence[int] | None = None  # input sizes for text models; None: DEFAULT_TOKENS
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
    # every other model's dense record is compared with this model's, timed in the same lock-step rounds (a
    # published compressed model against the model it was distilled from); measured first, if not in ``models``
    baseline: str | None = None
    labels: Sequence[str] = ()  # what each of ``models`` is, in words, in their order (fewer: the rest by provenance)

    def __post_init__(self):
        """What the command line takes, taken here too: one name for ``models`` (or ``runtimes``), a spec string
        (``"head_pruning=0.5,low_rank=0.3"``, or a pipeline file) for a pipeline of ``compress``, one number for
        ``seconds`` or ``tokens``."""
        if isinstance(self.models, str):
            self.models = (self.models,)
        if isinstance(self.labels, str):
            self.labels = (self.labels,)
        if isinstance(self.runtimes, str):
            self.runtimes = (self.runtimes,)
        if isinstance(self.compress, str):
            self.compress = (self.compress,)
        self.compress = [parse_spec(steps) if isinstance(steps, str) else steps for steps in self.compress]
        for name in ("seconds", "tokens"):
            if isinstance(getattr(self, name), int | float):
                setattr(self, name, (getattr(self, name),))

    def sizes(self, modality: str) -> Sequence[float]:
        """The input sizes asked for ``modality`` (speech: seconds, text: tokens), the defaults where none were."""
        if modality == "speech":
            return DEFAULT_SECONDS if self.seconds is None else self.seconds
        return DEFAULT_TOKENS if self.tokens is None else self.tokens
