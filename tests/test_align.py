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
    with pytest.raises(InvalidInputError, match="option 'align' must be int or 'auto' or null"):
        compressor.check_options({"align": True})
    with pytest.raises(InvalidInputError, match="option 'align' must be int or 'auto' or null, got 'fast'"):
        compressor.check_options({"align": "fast"})
    assert compressor.check_options({"align": "auto"})["align"] == "auto"


def test_low_rank_ranks_are_aligned_to_the_nearest_multiple_and_recorded():
    from compbench.importance.ranking import nearest_multiple

    assert [nearest_multiple(v, 8, 64) for v in (1, 4, 12, 13, 60, 64)] == [8, 8, 16, 16, 64, 64]
    assert nearest_multiple(5, 8, 6) == 6 and nearest_multiple(30, 8, 31) == 24  # no multiple fits; none above
    variant = COMPRESSORS.get("low_rank")(build_tiny("bert"), 0.7, {"align": 4, "only_if_cheaper": False})
    [step] = variant.manifest
    assert set(step["ranks_before_align"].values()) == {10} and set(step["ranks"].values()) == {12}  # 32 x 0.3
    assert all(rank % 4 == 0 for rank in step["ranks"].values()) and step["align"] == 4


def test_auto_alignment_is_the_smallest_candidate_within_reach_of_the_fastest():
    from compbench.timing.shapes import chosen_alignment

    assert chosen_alignment({1: 80.0, 8: 95.0, 16: 99.0, 32: 100.0, 64: 98.0, 128: 100.0}) == 16  # 0.97 of 100
    assert chosen_alignment({1: 100.0, 8: 90.0, 128: 99.0}) == 1  # no penalty for odd widths: no alignment
    assert chosen_alignment({1: 50.0, 8: 60.0, 128: 100.0}) == 128


def _fake_alignment(elements, calls):
    from compbench.timing.shapes import ShapeAlignment

    def measure(device, dtype):
        calls.append((device.type, dtype, torch.get_num_threads()))
        return ShapeAlignment(elements, {1: 50.0, elements: 100.0}, device.type, str(dtype)[6:],
                              torch.get_num_threads())
    return measure


def test_auto_alignment_is_measured_once_per_machine_dtype_and_threads_and_cached(tmp_path, monkeypatch):
    from compbench.timing import shapes

    calls = []
    monkeypatch.setattr(shapes, "measure_alignment", _fake_alignment(32, calls))
    first = shapes.preferred_alignment("cpu", torch.float32, cache=tmp_path)
    assert shapes.preferred_alignment("cpu", torch.float32, cache=tmp_path) == first and len(calls) == 1  # cached
    assert first.elements == 32 and first.rates_gmacs == {1: 50.0, 32: 100.0}  # read back as measured
    shapes.preferred_alignment("cpu", torch.bfloat16, cache=tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads > 1 else 2)
    try:
        shapes.preferred_alignment("cpu", torch.float32, cache=tmp_path)
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 3 and calls[1][1] == torch.bfloat16 and calls[2][2] != threads  # each its own benchmark
    assert len(list((tmp_path / "shapes").glob("alignment-*.json"))) == 3


@pytest.mark.parametrize(("elements", "head_units", "neuron_units"), [(32, 1, 32), (128, 2, 128), (8, 1, 8)])
def test_auto_becomes_the_fewest_units_whose_width_is_a_multiple_and_the_manifest_says_what_was_measured(
        elements, head_units, neuron_units, tmp_path, monkeypatch):
    from compbench.importance.ranking import resolve_align
    from compbench.timing import shapes

    monkeypatch.setenv("COMPBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(shapes, "measure_alignment", _fake_alignment(elements, []))
    assert resolve_align("auto", 64)[0] == head_units  # a head is 64 wide in the products
    assert resolve_align("auto", 1)[0] == neuron_units and resolve_align(4, 64) == (4, {})
    variant = COMPRESSORS.get("ffn_pruning")(build_tiny("bert"), 0.3, {"align": "auto", "scope": "layer"})
    [step] = variant.manifest
    assert step["align"] == neuron_units and step["align_option"] == "auto"
    assert step["align_measured"]["elements"] == elements and step["align_measured"]["device"] == "cpu"
    assert step["neurons_after"] == step["kept_after_align"] == aligned_kept(step["neurons_before"],
                                                                           step["kept_before_align"], neuron_units)
    assert all(kept % neuron_units == 0 or kept == whole  # tiny bert: FFN of 64
               for kept, whole in zip(step["neurons_after"], step["neurons_before"], strict=True))


def test_the_alignment_benchmark_runs_here_and_picks_one_of_its_candidates(tmp_path):
    from compbench.timing.shapes import CANDIDATE_WIDTHS, WITHIN, preferred_alignment

    measured = preferred_alignment("cpu", torch.float32, cache=tmp_path)
    assert set(measured.rates_gmacs) == set(CANDIDATE_WIDTHS) and all(r > 0 for r in measured.rates_gmacs.values())
    assert measured.rates_gmacs[measured.elements] >= WITHIN * max(measured.rates_gmacs.values())
    assert all(widths[0] % a == 0 and (widths[0] // a) % 2 == 1 for a, widths in CANDIDATE_WIDTHS.items())


def test_conv_pruning_keeps_aligned_channel_counts_nearest_the_amount_and_records_the_unaligned_ones():
    from compbench.surgery.conv_channels import conv_macs, kept_channels

    model = build_tiny("hubert")  # three convolutions of 16 channels
    [step] = COMPRESSORS.get("conv_pruning")(model, 0.5, {"align": 8}).manifest
    assert step["channels_before_align"] == [10, 10, 10] and step["channels_after"] == [8, 8, 8]
    assert step["align"] == 8 and step["channels_before"] == [16, 16, 16]
    # among aligned widths (8 or 16 per layer, the same fraction everywhere) 8s remove the share nearest a half
    total = sum(conv_macs(model.config, [16, 16, 16]))
    assert step["conv_macs_removed"] == pytest.approx(1 - sum(conv_macs(model.config, [8, 8, 8])) / total, abs=1e-6)
    assert kept_channels(model.config, [16, 16, 16], 0.1, align=8) == [16, 16, 16]  # 8s would remove far too much
    assert all(kept % 4 == 0 for kept in kept_channels(model.config, [16, 16, 12], 0.5, align=4))


def test_low_rank_measured_factorises_only_the_linears_whose_two_products_ran_faster(monkeypatch):
    from compbench.compressors import low_rank as low_rank_module
    from compbench.timing.shapes import FactorisationTiming

    asked = []

    def timing(in_features, out_features, rank, device=None, dtype=torch.float32, rows=256, cache=None):
        asked.append((in_features, out_features, rank, rows))
        return FactorisationTiming(1.0, 0.5 if out_features > in_features else 2.0)  # only the FFN's first is faster

    monkeypatch.setattr(low_rank_module, "factorisation_timing", timing)
    model = build_tiny("bert")  # 32 wide, FFN of 64
    [step] = COMPRESSORS.get("low_rank")(model, 0.5, {"only_if_cheaper": "measured", "measured_rows": 64}).manifest
    assert set(step["ranks"]) == {name for name in step["timed"] if name.endswith("intermediate.dense")}
    assert step["removed"] == 2 and len(step["unchanged"]) == step["total"] - 2  # tiny bert: two layers
    assert all(t == {"dense_ms": 1000.0, "factorised_ms": 500.0 if name in step["ranks"] else 2000.0}
               for name, t in step["timed"].items())
    assert {rows for *_, rows in asked} == {64} and step["measured_rows"] == 64
    with pytest.raises(InvalidInputError, match="'only_if_cheaper' must be bool or 'measured'"):
        COMPRESSORS.get("low_rank").check_options({"only_if_cheaper": "faster"})


def test_a_factorisation_is_timed_once_per_shape_on_this_machine_and_cached(tmp_path):
    from compbench.timing.shapes import factorisation_timing

    first = factorisation_timing(64, 256, 8, "cpu", rows=32, cache=tmp_path)
    assert first.dense_s > 0 and first.factorised_s > 0
    assert factorisation_timing(64, 256, 8, "cpu", rows=32, cache=tmp_path) == first  # read back, not timed again
    factorisation_timing(64, 256, 16, "cpu", rows=32, cache=tmp_path)
    assert len(list((tmp_path / "shapes").glob("factorisation-*.json"))) == 2


def test_low_rank_at_several_amounts_computes_each_weights_svd_once_and_gives_what_a_fresh_svd_gives(monkeypatch):
    from compbench.compressors import low_rank as low_rank_module

    model = build_tiny("bert")
    low_rank_module._SVDS.clear()
    fresh = COMPRESSORS.get("low_rank")(model, 0.5, {"only_if_cheaper": False}).model
    calls = []
    real = torch.linalg.svd
    monkeypatch.setattr(torch.linalg, "svd", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    again = COMPRESSORS.get("low_rank")(model, 0.5, {"only_if_cheaper": False}).model
    COMPRESSORS.get("low_rank")(model, 0.25, {"only_if_cheaper": False})
    assert calls == []  # every weight's SVD came from the first variant's
    inputs = {"input_ids": torch.randint(0, 50, (1, 8))}
    with torch.no_grad():
        assert torch.equal(fresh(**inputs).last_hidden_state, again(**inputs).last_hidden_state)
    low_rank_module._SVDS.clear()
    COMPRESSORS.get("low_rank")(model, 0.5, {"only_if_cheaper": False})
    assert len(calls) == len(low_rank_module._SVDS) > 0  # a cleared cache computes them again
