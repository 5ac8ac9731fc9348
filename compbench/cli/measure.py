"""``compbench measure``: params, exact MACs, wall-clock and memory of one or more models."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from compbench.cli.output import FORMATS, progress_bar, render
from compbench.compression.spec import load_options_file, parse_spec
from compbench.errors import InvalidInputError
from compbench.measure import DEFAULT_MODELS, DEFAULT_SECONDS, DEFAULT_TOKENS, MeasureOptions, measure
from compbench.models.loading import ATTN_IMPLEMENTATIONS, WEIGHTS
from compbench.store import append_records, existing_records
from compbench.timing.device import DEVICES
from compbench.timing.wallclock import TimingPolicy


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(
        name, help="measure params, MACs, latency and memory (default: hubert-base 10 s and bert-base 128 tokens)",
        description="Measure one or more models. With no arguments: hubert-base (10 s) and bert-base "
                    "(128 tokens), random weights, CPU.")
    p.add_argument("--model", action="append", metavar="M",
                   help="preset name, hub id or save_pretrained directory; repeat for several "
                        f"(default: {' and '.join(DEFAULT_MODELS)})")
    p.add_argument("--label", action="append", metavar="NAME",
                   help="what a model is, in words, for tables and charts: the first --label names the first "
                        "--model, and so on; or each as MODEL=NAME, as compbench report takes them (default: its "
                        "name, or a saved model's provenance)")
    p.add_argument("--baseline", metavar="M",
                   help="compare every other --model with this one (a published compressed model against the model "
                        "it was distilled from): timed in the same rounds, each record gets its speedup over it; "
                        "measured first, also where --model does not name it")
    p.add_argument("--compress", action="append", metavar="SPEC",
                   help="a compression pipeline, e.g. head_pruning=0.5,low_rank=0.3 or bf16, or a YAML/JSON "
                        "pipeline file; repeat to measure several variants beside the dense model")
    p.add_argument("--audit", action="store_true",
                   help="also report fvcore's and thop's counts and their difference from compbench's")
    p.add_argument("--task", metavar="T", help="add task quality (and variants' fidelity) to every record")
    p.add_argument("--per-example", action="store_true",
                   help="also measure every model example by example on the task's evaluation split (MACs "
                        "counted and latency timed per example; always done for input-dependent variants)")
    add_measurement_arguments(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="stdout format (default table)")
    p.add_argument("--out", metavar="FILE", help="append the records to this JSONL results file")


def add_measurement_arguments(parser) -> None:
    """The arguments of how to measure (sizes, device, timing, data), shared with ``compbench pipelines``."""
    parser.add_argument("--compress-options", metavar="FILE",
                        help="YAML/JSON mapping from compressor name to its options")
    parser.add_argument("--weights", choices=WEIGHTS,
                        help="random (from the config) or pretrained; default random for presets, "
                             "pretrained for checkpoints")
    parser.add_argument("--seconds", type=float, nargs="+", action="extend", metavar="S",
                        help=f"seconds of 16 kHz audio for speech models; several give cost against length "
                             f"(default {DEFAULT_SECONDS[0]:g})")
    parser.add_argument("--tokens", type=int, nargs="+", action="extend", metavar="T",
                        help=f"number of tokens for text models (default {DEFAULT_TOKENS[0]})")
    parser.add_argument("--batch", type=int, default=1, metavar="B", help="batch size (default 1)")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads (default: OMP_NUM_THREADS where set, else every core this process may use)")
    parser.add_argument("--no-latency", dest="latency", action="store_false",
                        help="count params and MACs only; do not time")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip peak memory")
    parser.add_argument("--budget", type=float, default=TimingPolicy.budget_s, metavar="SECONDS",
                        help="timing budget per model and size (default %(default)g s)")
    parser.add_argument("--rel-ci", type=float, default=TimingPolicy.rel_ci, metavar="FRACTION",
                        help="stop timing once the 95%% CI of the median is within ± this (default %(default)g)")
    parser.add_argument("--max-runs", type=int, default=TimingPolicy.max_runs, metavar="N",
                        help="stop timing after N rounds even if the interval is wider (default %(default)d)")
    parser.add_argument("--no-steady-allocator", dest="steady_allocator", action="store_false",
                        help="time with the C allocator's defaults instead of reusing freed memory "
                             "(slower, noisier; see the README)")
    parser.add_argument("--attn", choices=ATTN_IMPLEMENTATIONS, default="sdpa",
                        help="attention implementation to run (MACs are the same for each)")
    parser.add_argument("--runtime", action="append", metavar="R",
                        help="eager (default), compile or onnxruntime; repeat to time several, interleaved, each "
                             "beside its own dense model")
    parser.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")
    parser.add_argument("--task-limit", type=int, metavar="N",
                        help="use at most N examples per split (spread over it) for a quick run; recorded")


TIMING_FLAGS = {"budget_s": "--budget", "rel_ci": "--rel-ci", "max_runs": "--max-runs"}


def measurement_options(args: argparse.Namespace) -> MeasureOptions:
    """MeasureOptions from the arguments :func:`add_measurement_arguments` added (the rest at their defaults)."""
    timing = TimingPolicy(budget_s=args.budget, rel_ci=args.rel_ci, max_runs=args.max_runs)
    for field, problem in timing.problems().items():
        raise InvalidInputError(f"{TIMING_FLAGS[field]} {problem}")
    if args.task_limit is not None and args.task_limit < 1:
        raise InvalidInputError(f"--task-limit must be >= 1, got {args.task_limit}")
    return MeasureOptions(
        weights=args.weights,
        seconds=args.seconds,  # None where not given: the defaults, for the models of that modality
        tokens=args.tokens,
        batch=args.batch,
        device=args.device,
        threads=args.threads,
        latency=args.latency,
        memory=args.memory,
        attn_implementation=args.attn,
        timing=timing,
        steady_allocator=args.steady_allocator,
        data_root=args.data_root,
        task_limit=args.task_limit,
        runtimes=args.runtime or ("eager",),
    )


def options_by_name(args: argparse.Namespace) -> dict[str, dict]:
    """``--compress-options FILE``: options per compressor name (empty without it)."""
    return load_options_file(args.compress_options) if args.compress_options else {}


def options_from_args(args: argparse.Namespace) -> MeasureOptions:
    named = options_by_name(args)
    return replace(measurement_options(args), models=args.model or DEFAULT_MODELS,
                   compress=[parse_spec(spec, named) for spec in args.compress or []],
                   audit=args.audit, task=args.task, per_example=args.per_example, baseline=args.baseline,
                   labels=args.label or ())


def run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if args.out:  # refuse an unwritable place, or a corrupt or foreign results file, before measuring
        existing_records(args.out)
    with progress_bar() as update:
        records = measure(options, update)
    if args.out:
        append_records(args.out, records)
    sys.stdout.write(render(records, args.format))
    if args.format == "json":
        sys.stdout.write("\n")
    return 0
