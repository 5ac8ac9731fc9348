"""``compbench compress``: write a compressed variant with save_pretrained and its manifest."""

from __future__ import annotations

import argparse
import json

from compbench.cli.output import progress_bar
from compbench.compression.compressor import Variant
from compbench.compression.context import NO_CONTEXT
from compbench.compression.pipeline import check_task_given
from compbench.compression.spec import load_options_file, parse_spec, spec_label
from compbench.compressors import apply_pipeline
from compbench.models import load_model
from compbench.models.loading import WEIGHTS
from compbench.models.variants import save_variant
from compbench.outputs import check_output_folder
from compbench.quality.context import build_context
from compbench.tasks import find_task, resolve_data_root


def compress_model(model: str, spec: str, out_dir: str, weights: str | None = None,
                   options_file: str | None = None, seed: int = 0, task: str | None = None,
                   data_root: str | None = None, progress=None) -> dict:
    """Compress ``model`` with the pipeline ``spec`` and save it to ``out_dir``; return the manifest.

    With ``task``, data-driven steps learn from its train split (and evaluate on its dev split)."""
    steps = parse_spec(spec, load_options_file(options_file) if options_file else {})
    check_task_given([steps], task)
    task_spec = find_task(task) if task is not None else None
    if task_spec is not None:
        resolve_data_root(data_root)  # a missing data root fails before the model loads
    progress = progress or (lambda description, done: None)
    loaded = load_model(model, weights, seed=seed)
    progress(f"loaded {model}", 0.1)
    context = NO_CONTEXT
    if task_spec is not None:
        context = build_context(task_spec, loaded.adapter.modality, loaded.checkpoint, data_root, seed=seed,
                                progress=progress)
    progress(f"compressing {model}: {spec_label(steps)}", 0.2)
    variant = apply_pipeline(loaded.model, steps, context)
    progress(f"saving the variant to {out_dir}", 0.95)
    # a saved variant compressed again: its manifest keeps the model the first step compressed and every step
    # since, in order (the steps that made the variant, then these)
    source = loaded.origin or {"model": loaded.name, "checkpoint": loaded.checkpoint, "weights": loaded.weights,
                               "model_source": loaded.source, **({"label": loaded.label} if loaded.label else {})}
    chained = Variant(variant.model, (loaded.compression or []) + variant.manifest)
    save_variant(chained, out_dir, source, loaded.checkpoint)
    return {"source": source, "compression": chained.manifest}


def add_parser(commands, name: str) -> None:
    p = commands.add_parser(name, help="compress a model and save the variant (measure it with --model DIR)",
                            description="Apply a compression pipeline and write the variant with save_pretrained "
                                        "and compbench_manifest.json.")
    p.add_argument("--model", required=True, metavar="M", help="preset name, hub id or save_pretrained directory")
    p.add_argument("--compress", required=True, metavar="SPEC",
                   help="e.g. head_pruning=0.5,low_rank=0.3, or a YAML/JSON pipeline file")
    p.add_argument("--compress-options", metavar="FILE", help="YAML/JSON mapping from compressor to options")
    p.add_argument("--weights", choices=WEIGHTS)
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) directory")
    p.add_argument("--task", metavar="T", help="task whose data feeds data-driven steps (sensitivity, fisher, "
                                               "budget_pruning, accuracy_driven, distill)")
    p.add_argument("--data-root", metavar="DIR", help="where task data lives (default: $COMPBENCH_DATA_ROOT)")
    p.add_argument("--seed", type=int, default=0, help="seeds random weights and every sampling of task data")


def run(args: argparse.Namespace) -> int:
    check_output_folder(args.out, "the variant")
    with progress_bar() as update:
        manifest = compress_model(args.model, args.compress, args.out, args.weights, args.compress_options,
                                  args.seed, args.task, args.data_root, update)
    summary = [{k: v for k, v in step.items() if k in ("name", "amount", "removed", "total", "dtype")}
               for step in manifest["compression"]]
    print(json.dumps({"out": args.out, "steps": summary}, indent=2))
    return 0
