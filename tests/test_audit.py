"""The counter audit reports what fvcore and thop miss."""

from tiny_models import build_tiny

from compbench.counting.audit import audit_counts
from compbench.counting.macs import count_macs
from compbench.models import InputSpec, ModelAdapter


def test_audit_reports_both_counters_and_their_difference():
    model = build_tiny("hubert")
    adapter = ModelAdapter(model)
    inputs = adapter.build_inputs(InputSpec("speech", 0.3))
    ours = count_macs(model, inputs).total
    report = audit_counts(model, inputs, ours)
    assert set(report) == {"fvcore", "thop"}
    for name in ("fvcore", "thop"):
        entry = report[name]
        assert "error" not in entry, entry
        assert entry["relative_difference"] == (entry["macs"] - ours) / ours
    # fvcore cannot see scaled_dot_product_attention; compbench counts it
    assert "aten::scaled_dot_product_attention" in report["fvcore"]["skipped_ops"]
    # thop sees modules only, so the attention matmuls are missing
    assert report["thop"]["macs"] < ours
    # thop's scratch copy keeps the model clean
    assert not any("total_ops" in name for name, _ in model.named_buffers())
