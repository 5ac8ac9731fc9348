"""Measure models: params, exact MACs, wall-clock, peak memory; one record per model and size.

:func:`measure` runs these stages, each a module with one job, in this order:

1. :mod:`.resolve`: every setting checked; the device, threads, runtimes and task settled;
2. :mod:`.variants`: each model loaded and its compressed variants built;
3. :mod:`.count`: exact params, and MACs at every size;
4. :mod:`.evaluate`: with a task, the quality and fidelity of every variant;
5. :mod:`.records`: a record per size, runtime and variant, and :mod:`.per_example`: records measured
   example by example on the task's examples (every variant whose cost depends on its input);
6. :mod:`.latency`: every record timed, interleaved, its latency fields filled.

:mod:`.run` reads them in that order.
"""

from compbench.measure.latency import tolerance_for
from compbench.measure.options import (
    DEFAULT_MODELS,
    DEFAULT_SECONDS,
    DEFAULT_TOKENS,
    MeasureOptions,
    ModelLoader,
    ProgressCallback,
)
from compbench.measure.run import MeasuredRecord, measure, measure_subjects

__all__ = ["DEFAULT_MODELS", "DEFAULT_SECONDS", "DEFAULT_TOKENS", "MeasureOptions", "MeasuredRecord",
           "ModelLoader", "ProgressCallback", "measure", "measure_subjects", "tolerance_for"]
