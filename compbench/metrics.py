"""The quality metrics a record's ``quality.metric`` can name, and which way each is better.

Everything that compares quality reads the direction here: Pareto marks, the report's tables and charts; and
each metric is computed here, from predictions (class indices) or transcripts.
Accuracy and macro-F1 are better higher; word and character error rates (speech recognition) lower. A metric
not listed (a record from a newer compbench) is taken as better higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str

    @property
    def sense(self) -> str:
        """``max`` or ``min``: what a Pareto front wants of it."""
        return "max" if self.higher_is_better else "min"

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than``."""
        return value > than if self.higher_is_better else value < than


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


def classification_score(metric: str, predictions: Sequence[int], labels: Sequence[int]) -> float:
    """``accuracy`` (the fraction right) or ``macro_f1`` (the mean F1 over the classes that occur among the labels
    or the predictions; a class never predicted and never present is no class here) of class indices."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if len(predictions) != len(labels) or not len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if metric == "accuracy":
        return float((predictions == labels).mean())
    if metric == "macro_f1":
        scores = []
        for cls in np.union1d(predictions, labels):
            hits = int(((predictions == cls) & (labels == cls)).sum())
            predicted, present = int((predictions == cls).sum()), int((labels == cls).sum())
            scores.append(2 * hits / (predicted + present))  # F1 = 2PR/(P+R) = 2 hits / (predicted + present)
        return float(np.mean(scores))
    raise ValueError(f"{metric!r} is not a classification metric")


def error_rate(metric: str, references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """``wer`` or ``cer`` of transcripts over a whole split (jiwer: errors summed over the utterances, over the
    words or characters of every reference), as speech recognition reports it."""
    import jiwer

    if len(references) != len(hypotheses) or not len(references):
        raise ValueError(f"{len(hypotheses)} transcripts for {len(references)} references")
    if metric == "wer":
        return float(jiwer.wer(list(references), list(hypotheses)))
    if metric == "cer":
        return float(jiwer.cer(list(references), list(hypotheses)))
    raise ValueError(f"{metric!r} is not an error rate")
