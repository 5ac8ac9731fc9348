"""The result record: one measurement of one model (variant) at one input size.

The schema is written down here as types and versioned; the store refuses any other version.
A record is a plain JSON object so it survives a round trip through JSONL unchanged.
"""

from typing import Any, NotRequired, TypedDict

SCHEMA_VERSION = 1


class LatencyMs(TypedDict):
    median: float
    iqr: float
    ci95_low: float | None
    ci95_high: float | None
    runs: int
    samples: list[float]  # raw, in the order measured
    converged: bool  # the 95 % CI reached ±rel_ci before the budget ran out
    budget_exhausted: bool


class Environment(TypedDict):
    compbench: str
    torch: str
    transformers: str
    python: str
    platform: str
    cpu: str
    cores: NotRequired[int]  # cores this process could run on
    gpu: str | None
    torch_build: NotRequired[str]  # "cpu", "cuda 12.8", ...
    hostname: NotRequired[str]
    git_commit: str | None


class Record(TypedDict):
    schema_version: int
    run_id: str
    timestamp: str  # ISO 8601, UTC
    model: str  # preset name, hub id or directory, as asked for
    model_source: str  # "preset" | "hub" | "local" | "compbench finetune: M from random init on T vN" (see loading)
    checkpoint: str | None
    family: str  # config.model_type
    modality: str  # "speech" | "text"
    weights: str  # "random" | "pretrained" | "trained-here:TASK" (trained by compbench finetune, not pretrained)
    compression: list[dict] | None  # None for the dense model; else [{name, amount, options}]
    manifest: NotRequired[list[dict] | None]  # per step: what was removed or changed, per layer
    input: dict  # kind, seconds/samples/sample_rate or tokens, batch; kind "examples": task, split, examples
    device: str
    threads: int
    attn_implementation: str
    dtype: str
    params: int
    params_nonzero: int
    params_by_component: dict[str, int]
    macs: int
    macs_effective: int
    macs_by_component: dict[str, int]
    macs_effective_by_component: dict[str, int]
    macs_per_example: NotRequired[dict]  # input kind "examples": mean, median, p90, max, min, samples (in order)
    exits: NotRequired[dict[str, int]]  # input-dependent variants: examples leaving after each layer ("1".."L")
    mean_exit_layer: NotRequired[float]
    latency_ms: NotRequired[LatencyMs]  # absent when latency was not measured; per example: also p90, mean
    timing: NotRequired[dict]  # the policy: budget_s, rel_ci, min_runs, interleaved with
    achieved_flops_per_s: NotRequired[float]  # 2 * macs / median time
    gemm_peak: NotRequired[dict]
    fraction_of_peak: NotRequired[float]
    memory: NotRequired[dict]
    speedup: NotRequired[float]  # dense median / variant median, same run (per example: of the mean latencies)
    speedup_ci95: NotRequired[list[float] | None]  # [low, high] from the paired rounds (see timing.stats)
    baseline_latency_ms: NotRequired[dict]  # the dense model in the same run: median, CI, runs, samples
    predicted_speedup: NotRequired[float]  # dense MACs / variant MACs (per example: of the means)
    speedup_per_example: NotRequired[dict]  # median, p10, p90 of dense/variant per example; efficiency_median:
    # the median example's measured / MAC-predicted speedup
    audit: NotRequired[dict]
    quality: NotRequired[dict]  # task, task_version, metric, split, value, protocol, examples; runtime when
    # not evaluated in PyTorch (ort_int8: onnxruntime)
    runtime: NotRequired[dict]  # what ran it when timed: name, version, its settings, output_difference (from
    # eager's, relative to the largest output) and tolerance; ort_int8: quantization, quantized_output_difference
    fidelity: NotRequired[dict]  # variants: per-layer CKA and cosine against the dense model
    warnings: list[str]
    environment: Environment
    sweep: NotRequired[str]  # the sweep that produced the record (compbench sweep)
    job: NotRequired[str]  # the job's key: a hash of its configuration, compbench and schema versions
    job_seconds: NotRequired[float]  # wall-clock of the whole job (loading, compressing, measuring)
    pipeline_study: NotRequired[dict]  # id, operators, subsets, basis, order (operator indices; [] for dense)
    finetune: NotRequired[dict]  # a model fine-tuned by the sweep: source model, task, key, dev accuracy


def _required_fields() -> dict[str, Any]:
    return {name: hint for name, hint in Record.__annotations__.items()
            if name in Record.__required_keys__}


REQUIRED_FIELDS = tuple(_required_fields())
_INTEGER_FIELDS = ("schema_version", "params", "params_nonzero", "macs", "macs_effective", "threads")


def validate_record(record: object) -> list[str]:
    """Problems that make ``record`` unusable (empty when it is a valid record)."""
    if not isinstance(record, dict):
        return [f"expected a JSON object, got {type(record).__name__}"]
    problems = [f"missing key {key!r}" for key in REQUIRED_FIELDS if key not in record]
    for key in _INTEGER_FIELDS:
        if key in record and (not isinstance(record[key], int) or isinstance(record[key], bool)):
            problems.append(f"{key!r} must be an integer, got {record[key]!r}")
    latency = record.get("latency_ms")
    if latency is not None and not (isinstance(latency, dict) and "median" in latency):
        problems.append("'latency_ms' must be an object with a 'median'")
    return problems


def input_label(record: dict) -> str:
    """``10 s``, ``128 tok``, ``2 s ×4``: the record's input size; or the task examples it was measured on."""
    spec = record["input"]
    if spec["kind"] == "examples":  # measured example by example (input-dependent cost)
        return f"{spec['examples']} {spec['task']} {spec['split']} examples"
    size = f"{spec['seconds']:g} s" if spec["kind"] == "audio" else f"{spec['tokens']} tok"
    return size if spec.get("batch", 1) == 1 else f"{size} ×{spec['batch']}"


def runtime_name(record: dict) -> str:
    """What ran the model: ``eager``, ``compile``, ``onnxruntime`` (records written before runtimes: eager)."""
    return (record.get("runtime") or {}).get("name", "eager")


def step_label(step: dict) -> str:
    """One compression step as written on the command line: ``head_pruning=0.5``, ``int8_dynamic``."""
    return step["name"] if step.get("amount") is None else f"{step['name']}={step['amount']:g}"


def compression_label(record: dict) -> str:
    """``dense``, or the steps as written on the command line: ``head_pruning=0.5,int8_dynamic``."""
    steps = record.get("compression")
    if not steps:
        return "dense"
    return ",".join(step_label(s) for s in steps)


def machine_label(record: dict) -> str:
    """The machine a record was measured on, as one line: CPU, cores, threads, device, GPU, torch build.

    Two records with the same label ran on interchangeable machines and settings; latencies (and
    speedups) from different labels are never put in one column. Records written before compbench
    recorded cores and the torch build have a shorter label."""
    env = record.get("environment", {})
    parts = [env.get("cpu") or "unknown CPU"]
    if env.get("cores"):
        parts.append(f"{env['cores']} cores")
    parts.append(f"{record.get('threads')} threads")
    if record.get("device") == "cuda" or env.get("gpu"):
        parts.append(f"{record.get('device')} {env.get('gpu') or 'no GPU'}")
    parts.append(f"torch {env.get('torch', '?')}" + (f" ({env['torch_build']})" if env.get("torch_build") else ""))
    return ", ".join(parts)
