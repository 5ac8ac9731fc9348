"""The result record: one measurement of one model (variant) at one input size.

The schema is written down here as types and versioned; the store refuses any other version.
A record is a plain JSON object so it survives a round trip through JSONL unchanged. Every field
carries its description (``Annotated``): the documentation's record reference is generated from them
(:func:`describe_fields`).
"""

from typing import Annotated, Any, NotRequired, TypedDict, get_args, get_origin, get_type_hints

SCHEMA_VERSION = 1


class LatencyMs(TypedDict):
    """A sized record's latency: robust statistics beside every raw sample, in milliseconds."""

    median: Annotated[float, "median of the runs"]
    iqr: Annotated[float, "interquartile range of the runs"]
    ci95_low: Annotated[float | None, "distribution-free 95 % interval of the median, low end (None: too few runs)"]
    ci95_high: Annotated[float | None, "its high end"]
    runs: Annotated[int, "timed runs"]
    samples: Annotated[list[float], "every run, raw, in the order measured"]
    converged: Annotated[bool, "the 95 % interval reached ±rel_ci before the budget ran out"]
    budget_exhausted: Annotated[bool, "the time budget ran out"]


class Environment(TypedDict):
    """What the record was measured on."""

    compbench: Annotated[str, "compbench version"]
    torch: Annotated[str, "torch version"]
    transformers: Annotated[str, "transformers version"]
    python: Annotated[str, "Python version"]
    platform: Annotated[str, "operating system and architecture"]
    cpu: Annotated[str, "CPU model"]
    cores: NotRequired[Annotated[int, "cores this process could run on"]]
    gpu: Annotated[str | None, "GPU name, None without one"]
    torch_build: NotRequired[Annotated[str, "cpu, cuda 12.8, ..."]]
    hostname: NotRequired[Annotated[str, "host name"]]
    git_commit: Annotated[str | None, "commit of the compbench checkout, where it runs from one"]


class Record(TypedDict):
    """One measurement of one model (variant) at one input size (or per example on a task's split)."""

    schema_version: Annotated[int, "the record schema's version (the store refuses another, or migrates it)"]
    run_id: Annotated[str, "shared by every record of one run; speedups compare records of one run"]
    timestamp: Annotated[str, "ISO 8601, UTC"]
    model: Annotated[str, "preset name, hub id or directory, as asked for"]
    label: NotRequired[Annotated[str, "what the model is, in words, where that is more than its name: --label, "
                                      "or a saved model's provenance (distilhubert trained here on fsdd-digits)"]]
    model_source: Annotated[str, "preset, hub or local; for weights trained here, how: compbench finetune: M from "
                                 "random init on T vN"]
    checkpoint: Annotated[str | None, "where the weights (or the architecture) came from"]
    base_model: NotRequired[Annotated[dict, "a saved variant: the model its first compression step compressed "
                                            "(model, checkpoint, weights, model_source), across every save"]]
    family: Annotated[str, "config.model_type"]
    modality: Annotated[str, "speech or text"]
    weights: Annotated[str, "random, pretrained, or trained-here:TASK (trained by compbench finetune, not "
                            "pretrained)"]
    compression: Annotated[list[dict] | None, "None for the dense model; else every step in order: "
                                              "[{name, amount, options}]"]
    manifest: NotRequired[Annotated[list[dict] | None, "per step: what was removed or changed, per layer"]]
    input: Annotated[dict, "kind, seconds/samples/sample_rate or tokens, batch; kind examples: task, split, "
                           "examples"]
    device: Annotated[str, "cpu or cuda"]
    threads: Annotated[int, "CPU threads the run used"]
    attn_implementation: Annotated[str, "the attention implementation that ran (sdpa or eager)"]
    dtype: Annotated[str, "the weights' dtype (a cast or quantization step names its own)"]
    params: Annotated[int, "every distinct parameter once"]
    params_nonzero: Annotated[int, "parameters that are not zero"]
    params_by_component: Annotated[dict[str, int], "params per component (feature_encoder or embeddings, "
                                                   "attention, ffn, other, head)"]
    macs: Annotated[int, "exact multiply-accumulates of one forward (per example: the mean)"]
    macs_effective: Annotated[int, "MACs with zero weights left out"]
    macs_by_component: Annotated[dict[str, int], "MACs per component"]
    macs_effective_by_component: Annotated[dict[str, int], "effective MACs per component"]
    macs_per_example: NotRequired[Annotated[dict, "input kind examples: mean, median, p90, max, min, samples (in "
                                                  "order)"]]
    exits: NotRequired[Annotated[dict[str, int], "input-dependent variants: examples leaving after each layer "
                                                 "(1..L)"]]
    mean_exit_layer: NotRequired[Annotated[float, "input-dependent variants: the mean layer examples left after"]]
    latency_ms: NotRequired[Annotated[LatencyMs, "absent when latency was not measured; per example: also p90, "
                                                 "mean"]]
    rtf: NotRequired[Annotated[dict, "speech records with latency: the real-time factor, seconds of compute per "
                                     "second of audio: median (and ci95_low, ci95_high) of latency / (seconds x "
                                     "batch); per example: mean latency / mean audio; audio_seconds"]]
    timing: NotRequired[Annotated[dict, "the policy: budget_s, rel_ci, min_runs, interleaved_with, allocator"]]
    achieved_flops_per_s: NotRequired[Annotated[float, "2 * macs / median time"]]
    gemm_peak: NotRequired[Annotated[dict, "this machine's fp32 GEMM peak, measured in the same run"]]
    fraction_of_peak: NotRequired[Annotated[float, "achieved_flops_per_s / the GEMM peak"]]
    memory: NotRequired[Annotated[dict, "peak memory of one forward (eager), weights and inputs"]]
    speedup: NotRequired[Annotated[float, "dense median / variant median, same run (per example: of the mean "
                                          "latencies); another model's: baseline median / its median"]]
    speedup_ci95: NotRequired[Annotated[list[float] | None, "[low, high] from the paired rounds (see "
                                                            "timing.stats)"]]
    baseline_latency_ms: NotRequired[Annotated[dict, "the dense model (or the baseline) in the same run: median, "
                                                     "CI, runs, samples"]]
    predicted_speedup: NotRequired[Annotated[float, "dense MACs / variant MACs (per example: of the means); "
                                                    "another model's: baseline MACs / its MACs"]]
    baseline: NotRequired[Annotated[str, "--baseline: the model this (dense) model is compared with, measured in "
                                         "the same run"]]
    speedup_per_example: NotRequired[Annotated[dict, "median, p10, p90 of dense/variant per example; "
                                                     "efficiency_median: the median example's measured / "
                                                     "MAC-predicted speedup"]]
    audit: NotRequired[Annotated[dict, "--audit: fvcore's and thop's counts beside compbench's"]]
    quality: NotRequired[Annotated[dict, "task, task_version, metric, split, value, protocol, examples; runtime "
                                         "when not evaluated in PyTorch (ort_int8: onnxruntime); split_examples, "
                                         "the split's size, where --task-limit took fewer"]]
    runtime: NotRequired[Annotated[dict, "what ran it when timed: name, version, its settings, output_difference "
                                         "(from eager's, relative to the largest output) and tolerance; ort_int8: "
                                         "quantization, quantized_output_difference"]]
    fidelity: NotRequired[Annotated[dict, "variants: per-layer CKA and cosine against the dense model"]]
    warnings: Annotated[list[str], "what the reader should know: a budget that ran out, a runtime skipped"]
    environment: Annotated[Environment, "what it was measured on"]
    sweep: NotRequired[Annotated[str, "the sweep that produced the record (compbench sweep)"]]
    job: NotRequired[Annotated[str, "the job's key: a hash of its configuration, compbench and schema versions"]]
    job_seconds: NotRequired[Annotated[float, "wall-clock of the run that measured the job: its whole timing group "
                                                 "(loading, compressing, measuring every job of the group)"]]
    pipeline_study: NotRequired[Annotated[dict, "id, operators, subsets, basis, order (operator indices; [] for "
                                                "dense)"]]
    finetune: NotRequired[Annotated[dict, "a model fine-tuned by the sweep: source model, task, key, dev "
                                          "accuracy"]]


def describe_fields(schema: type = Record) -> list[tuple[str, Any, bool, str]]:
    """(name, type, required, description) of every field of a record type, in order."""
    fields = []
    for name, hint in get_type_hints(schema, include_extras=True).items():
        if get_origin(hint) is NotRequired:
            hint = get_args(hint)[0]
        description = ""
        if get_origin(hint) is Annotated:
            hint, description = get_args(hint)[0], " ".join(map(str, hint.__metadata__))
        fields.append((name, hint, name in schema.__required_keys__, description))
    return fields


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


def real_time_factor(record: dict) -> dict | None:
    """A speech record's real-time factor: seconds of compute per second of audio (below 1: faster than real
    time). Sized: the median latency over the audio of one forward (``seconds`` x ``batch``), with the latency's
    95 % interval divided the same way. Per example: the mean latency over the examples' mean audio, as a
    corpus's RTF is its total compute over its total audio. The record's own ``rtf`` where it has one; records
    written before ``rtf`` was recorded get the same figure from their latency and input. None for a text record
    or one not timed."""
    if record.get("rtf"):
        return record["rtf"]
    latency, described = record.get("latency_ms"), record["input"]
    if not latency or record.get("modality") != "speech":
        return None
    if "seconds" in described:
        audio = described["seconds"] * described.get("batch", 1)
        return {"median": latency["median"] / 1e3 / audio, "audio_seconds": audio,
                **{end: None if latency.get(end) is None else latency[end] / 1e3 / audio
                   for end in ("ci95_low", "ci95_high")}}
    if "mean_seconds" in described and "mean" in latency:
        return {"mean": latency["mean"] / 1e3 / described["mean_seconds"], "audio_seconds": described["mean_seconds"]}
    return None


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
