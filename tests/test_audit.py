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


def test_a_model_timed_under_two_runtimes_is_audited_once(tmp_path, monkeypatch):
    """The counts do not depend on the runtime: one audit per model and size, in both runtimes' records."""
    from compbench.measure import MeasureOptions, count, measure
    from compbench.measure import run as measure_run

    build_tiny("bert").save_pretrained(tmp_path / "bert")
    calls = []

    def audit_once(model, inputs, macs):
        calls.append(macs)
        return {"fvcore": {"macs": macs, "relative_difference": 0.0}}

    monkeypatch.setattr(count, "audit_counts", audit_once)
    monkeypatch.setattr(measure_run, "time_jobs", lambda jobs, run: None)  # the timing is not what is tested
    records = measure(MeasureOptions(models=str(tmp_path / "bert"), tokens=[8, 16], runtimes=["eager", "compile"],
                                     compress="layer_drop=0.5", audit=True, memory=False))
    assert len(records) == 8 and len(calls) == 4  # (dense, variant) x (8, 16 tokens), each under two runtimes
    assert all(r["audit"] == {"fvcore": {"macs": r["macs"], "relative_difference": 0.0}} for r in records)
