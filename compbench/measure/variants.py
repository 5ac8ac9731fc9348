"""Stage 2, variants: load each model and build its compressed variants, each pipeline applied to the
dense model with the task's data where a step learns from it; then say how each is measured (sized
inputs, or example by example when its cost depends on the input) and under which runtimes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch import nn

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.compression.context import NO_CONTEXT, CompressionContext
from compbench.compression.pipeline import apply_pipeline, excluded_runtimes
from compbench.compression.spec import spec_label
from compbench.compressors import COMPRESSORS  # the package: every built-in compressor registered
from compbench.counting.weights import is_input_dependent
from compbench.errors import InvalidInputError
from compbench.measure.options import ModelLoader
from compbench.measure.resolve import Run, sizes_for
from compbench.models import LoadedModel
from compbench.quality.context import build_context
from compbench.quality.evaluate import check_model_for_task
from compbench.runtimes.base import onnx_quantization
from compbench.tasks.schema import MODALITY_OF_INPUT
from compbench.timing.shapes import target_device


@dataclass
class Subject:
    """One model a run measures: the dense model or one compressed variant of it."""

    model: nn.Module
    adapter: ModelAdapter
    manifest: list[dict] | None  # every compression step that produced it (a saved variant's own first)
    dynamic: bool = False  # its cost depends on the input's values (early exit): measured per example only
    per_example: bool = False  # measured example by example on the task's evaluation split
    excluded: dict[str, str] = field(default_factory=dict)  # runtime -> the step that rules it out


@dataclass
class ModelGroup:
    """A loaded model, the sizes it is measured at, and its subjects: the dense model first, then its variants."""

    loaded: LoadedModel
    specs: list[InputSpec]
    subjects: list[Subject]

    @property
    def dense(self) -> Subject:
        return self.subjects[0]


def build_variants(name: str, run: Run, load: ModelLoader, position: int) -> ModelGroup:
    """Load ``name``, apply every pipeline to it, and decide how each subject is measured."""
    options, progress = run.options, run.progress
    loaded = load(name, options.weights, options.attn_implementation, options.seed)
    if name in run.labels:  # a copy: a caching loader may hand the same LoadedModel out again
        loaded = replace(loaded, label=run.labels[name])
    specs = sizes_for(loaded, options)
    check_fits_task(loaded, run)
    check_per_example([loaded.model], name, run)  # a saved variant: before its progress line, as resolve for steps
    # said once the model loaded and its sizes and task were checked: a command refused for its input prints
    # only its error, even off a terminal, where every progress line stays in the log
    progress(f"loaded {name}", 0.2 * position / len(options.models))
    subjects = [Subject(loaded.model, loaded.adapter, loaded.compression)]
    context = compression_context(loaded, run)
    for steps in options.compress:
        progress(f"compressing {name}: {spec_label(list(steps))}", 0.2 * position / len(options.models))
        with target_device(run.device):  # what a step's shape benchmark times (align: auto) is where it will run
            variant = apply_pipeline(loaded.model, list(steps), context)
        variant.model.eval()
        subjects.append(Subject(variant.model, ModelAdapter(variant.model),
                                (loaded.compression or []) + variant.manifest))
    for subject in subjects:
        subject.dynamic = is_input_dependent(subject.model)
        subject.per_example = options.per_example or subject.dynamic
        # the runtimes a variant cannot run under matter only where it is timed (its counts are PyTorch's, and an
        # ort_int8 variant's quality is evaluated in ONNX Runtime whatever is timed)
        subject.excluded = excluded_runtimes([step["name"] for step in subject.manifest or []],
                                             run.runtimes) if options.latency else {}
    check_per_example([subject.model for subject in subjects[1:]], name, run)  # the variants (the model: above)
    return ModelGroup(loaded, specs, subjects)


def check_per_example(models: list[nn.Module], name: str, run: Run) -> None:
    """A variant whose cost depends on its input is measured per example, on a task; and per-example timing is
    eager PyTorch's, which an ort_int8 variant does not run under. (:func:`~compbench.measure.resolve.resolve`
    refuses the steps that make such variants before any model loads; this refuses saved ones.)"""
    if run.task is None and any(is_input_dependent(model) for model in models):
        raise InvalidInputError(f"{name}: a variant's cost depends on its input (early exit): give --task, "
                                "it is measured per example on the task's evaluation split")
    if run.options.per_example and any(onnx_quantization(model) is not None for model in models):
        raise InvalidInputError("--per-example times eager PyTorch, and an ort_int8 variant runs only under "
                                "onnxruntime: measure it without --per-example")


def check_fits_task(loaded: LoadedModel, run: Run) -> None:
    """"Fine-tune first", before any data loads or any step compresses: a model of the task's modality must
    have the head a ``finetune`` task is evaluated with."""
    task = run.task
    if task is not None and MODALITY_OF_INPUT[task.input] == loaded.adapter.modality:
        check_model_for_task(loaded.model, task)


def compression_context(loaded: LoadedModel, run: Run) -> CompressionContext:
    """The compression context for ``loaded``'s pipelines: built only when a step uses data and a task is given."""
    options, task = run.options, run.task
    uses_data = any(COMPRESSORS.get(step.name).uses_context for steps in options.compress for step in steps)
    if task is None or not uses_data:
        return NO_CONTEXT
    return build_context(task, loaded.adapter.modality, loaded.checkpoint, options.data_root, run.device,
                         options.seed, run.progress, options.task_limit)
