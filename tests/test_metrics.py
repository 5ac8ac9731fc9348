"""Quality metrics: which way each is better, and each computed exactly (hand-counted cases)."""

import pytest

from compbench.metrics import METRICS, classification_score, direction_note, error_rate, metric_of
from compbench.tasks.schema import METRICS as TASK_METRICS


def test_accuracy_and_macro_f1_by_hand():
    predictions, labels = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    assert classification_score("accuracy", predictions, labels) == pytest.approx(4 / 6)
    # class 0: 1 hit, 2 predicted, 2 present -> 0.5; class 1: 2 hits, 2, 3 -> 0.8; class 2: 1, 2, 1 -> 2/3
    assert classification_score("macro_f1", predictions, labels) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert classification_score("macro_f1", [1, 1], [1, 1]) == 1.0  # a class absent from both is no class
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        classification_score("accuracy", [0, 1, 1], [0, 1])


def test_word_and_character_error_rates_sum_errors_over_the_split():
    references = ["seven two nine", "one"]
    hypotheses = ["seven nine", "one one"]  # a deletion, an insertion: 2 errors over 4 reference words
    assert error_rate("wer", references, hypotheses) == pytest.approx(2 / 4)
    # characters: "seven two nine" -> "seven nine" deletes "two " (4 of 14); "one" -> "one one" inserts 4 (of 3)
    assert error_rate("cer", references, hypotheses) == pytest.approx(8 / 17)
    with pytest.raises(ValueError, match="is not an error rate"):
        error_rate("accuracy", references, hypotheses)


def test_every_task_metric_says_which_way_is_better():
    assert set(TASK_METRICS) <= set(METRICS)
    assert [metric_of(name).sense for name in ("accuracy", "macro_f1", "wer", "cer")] == ["max", "max", "min", "min"]
    assert metric_of("from-a-newer-compbench").sense == "max"
    assert (direction_note("wer"), direction_note("accuracy")) == (" (lower is better)", "")
