"""align: head and FFN pruning keep each layer's count at a multiple of N (or all of it), the total as near the
amount as the multiples allow, and the manifest says the counts before and after rounding."""

import pytest
import torch
from tiny_models import build_tiny

from compbench.compressors import COMPRESSORS
from compbench.errors import InvalidInputError
from compbench.importance.ranking import aligned_kept, aligned_removals


def test_aligned_counts_are_multiples_or_whole_layers_and_meet_the_total_as_closely_as_they_can():
    assert sorted(aligned_kept([64, 64, 64], [45, 45, 45], 8)) == [40, 48, 48]  # 135 wanted: 136 is the nearest
    # 12 heads, align 8: 8 or all 12; 18 wanted, and 16 is as near as 20: each layer keeps its nearest, 8
    assert aligned_kept([12, 12], [9, 9], 8) == [8, 8]
    assert sorted(aligned_kept([12, 12, 12], [10, 10, 10], 8)) == [8, 12, 12]  # 30 wanted: 32
    assert aligned_kept([6], [3], 8) == [6]  # fewer units than the multiple: the layer stays whole
    assert aligned_kept([64], [64], 8) == [64] and aligned_kept([64], [1], 8) == [8]  # never below one multiple
    brute = min(((a, b, c) for a in (40, 48) for b in (40, 48) for c in (40, 48)),
                key=lambda kept: abs(sum(kept) - 135))
    assert sum(aligned_kept([64, 64, 64], [45, 45, 45], 8)) == sum(brute)


def test_the_least_important_units_go_first_and_without_align_nothing_changes():
    scores = [torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0])]
    removed, manifest = aligned_removals(scores, [[1, 3, 4]], 4)  # 5 kept, rounded to 4: one more goes
    assert removed == [[1, 2, 3, 4]]  # the four lowest scores
    assert manifest == {"align": 4, "kept_before_align": [5], "kept_after_align": [4]}
    assert aligned_removals(scores, [[1, 3, 4]], None) == ([[1, 3, 4]], {})


@pytest.mark.parametrize(("name", "counts"), [("ffn_pruning", "neurons_after"), ("head_pruning", "heads_after")])
def test_ffn_and_head_pruning_keep_aligned_counts_and_record_them(name, counts):
    compressor = COMPRESSORS.get(name)
    align = 16 if name == "ffn_pruning" else 2  # tiny hubert: FFN of 64, 4 heads
    variant = compressor(build_tiny("hubert"), 0.3, {"align": align, "scope": "layer"})
    [step] = variant.manifest
    assert all(kept % align == 0 for kept in step[counts]) and step["align"] == align
    assert step["kept_after_align"] == step[counts] and step["kept_before_align"] != step[counts]
    with pytest.raises(InvalidInputError, match="option 'align' must be >= 1"):
        compressor.check_options({"align": 0})
    with pytest.raises(InvalidInputError, match="option 'align' must be int or null"):
        compressor.check_options({"align": True})


def test_low_rank_ranks_are_aligned_to_the_nearest_multiple_and_recorded():
    from compbench.importance.ranking import nearest_multiple

    assert [nearest_multiple(v, 8, 64) for v in (1, 4, 12, 13, 60, 64)] == [8, 8, 16, 16, 64, 64]
    assert nearest_multiple(5, 8, 6) == 6 and nearest_multiple(30, 8, 31) == 24  # no multiple fits; none above
    variant = COMPRESSORS.get("low_rank")(build_tiny("bert"), 0.7, {"align": 4, "only_if_cheaper": False})
    [step] = variant.manifest
    assert set(step["ranks_before_align"].values()) == {10} and set(step["ranks"].values()) == {12}  # 32 x 0.3
    assert all(rank % 4 == 0 for rank in step["ranks"].values()) and step["align"] == 4
