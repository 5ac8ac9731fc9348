"""A minimal valid record, and a worker that appends records (for the two-writer test; light imports only)."""

from compbench.record import SCHEMA_VERSION
from compbench.store import append_records


def make_record(**overrides):
    record = {
        "schema_version": SCHEMA_VERSION, "run_id": "r1", "timestamp": "2026-11-21T00:00:00+00:00",
        "model": "distilhubert", "model_source": "preset", "checkpoint": "ntu-spml/distilhubert",
        "family": "hubert", "modality": "speech", "weights": "random", "compression": None,
        "input": {"kind": "audio", "seconds": 1.0, "samples": 16000, "sample_rate": 16000, "batch": 1},
        "device": "cpu", "threads": 2, "attn_implementation": "sdpa", "dtype": "float32",
        "params": 100, "params_nonzero": 90, "params_by_component": {"other": 100},
        "macs": 1000, "macs_effective": 900, "macs_by_component": {"other": 1000},
        "macs_effective_by_component": {"other": 900},
        "latency_ms": {"median": 2.0, "iqr": 0.1, "ci95_low": 1.9, "ci95_high": 2.1, "runs": 12,
                      "samples": [2.0] * 12, "converged": True, "budget_exhausted": False},
        "warnings": [], "environment": {"torch": "x"},
    }
    record.update(overrides)
    return record


def append_many(path: str, worker: int, count: int) -> None:
    """Append ``count`` records one at a time (run in a separate process)."""
    for index in range(count):
        append_records(path, [make_record(run_id=f"{worker}-{index}")])
