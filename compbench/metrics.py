"""The quality metrics a record's ``quality.metric`` can name, and which way each is better.

Everything that compares quality reads the direction here: Pareto marks, the report's tables and charts.
Accuracy and macro-F1 are better higher; word and character error rates (speech recognition) lower. A metric
not listed (a record from a newer compbench) is taken as better higher.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str

    @property
    def sense(self) -> str:
        """``max`` or ``min``: what a Pareto front wants of it."""
        return "max" if self.higher_is_better else "min"


METRICS = {metric.name: metric for metric in (
    Metric("accuracy", True, "the fraction of examples classified correctly"),
    Metric("macro_f1", True, "the mean over classes of each class's F1"),
    Metric("wer", False, "word error rate: word substitutions, deletions and insertions over reference words"),
    Metric("cer", False, "character error rate: as the word error rate, over characters"),
)}


def metric_of(name: str | None) -> Metric:
    """The metric called ``name``; one not listed is taken as better higher."""
    return METRICS.get(name) or Metric(str(name), True, "not known to this compbench: taken as better higher")


def direction_note(name: str | None) -> str:
    """What a table or axis adds to a metric that is better lower: `` (lower is better)``; else nothing."""
    return "" if metric_of(name).higher_is_better else " (lower is better)"
