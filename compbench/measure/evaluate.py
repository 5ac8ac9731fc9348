"""Stage 4, evaluate: with a task, the quality of the dense model and of every variant on the task's
evaluation split, and each variant's per-layer fidelity to the dense model on the same examples."""

from __future__ import annotations

import torch

from compbench.measure.resolve import Run
from compbench.measure.variants import ModelGroup
from compbench.quality.evaluate import (
    TaskData,
    fidelity,
    hidden_states,
    prepare_task,
    quality_and_states,
    task_quality,
)
from compbench.runtimes.base import onnx_quantization
from compbench.runtimes.onnx import served_by_onnxruntime


def task_data(group: ModelGroup, run: Run) -> TaskData | None:
    """The task's examples prepared for ``group``'s model (its tokenizer, its sample rate); None without a task."""
    task, loaded, options = run.task, group.loaded, run.options
    if task is None:
        return None
    return prepare_task(task, loaded.adapter.modality, loaded.checkpoint, options.data_root, options.task_limit)


def evaluate(group: ModelGroup, data: TaskData, run: Run) -> list[dict]:
    """Per subject, the fields it adds to its records: ``quality`` for the dense model (unless
    ``dense_quality`` is off) and each variant; ``fidelity`` for variants (not for an early-exit model,
    which has no last layer's states for every example). A model's quality and its hidden states come from one
    pass over the split where the task allows (:func:`~compbench.quality.evaluate.quality_and_states`). An
    ort_int8 variant is evaluated through ONNX Runtime, where its int8 model lives."""
    results, dense_states = [], None
    dense_dynamic = group.dense.dynamic
    for position, subject in enumerate(group.subjects):
        run.progress(f"evaluating {group.loaded.name} on {data.task.name}", position / len(group.subjects))
        model = subject.model
        served_by = "onnxruntime" if onnx_quantization(model) is not None else None
        if served_by:  # its int8 model exists only in ONNX Runtime: evaluated there
            model = served_by_onnxruntime(model, torch.get_num_threads())
        wants_quality = bool(position) or run.options.dense_quality or dense_dynamic
        wants_states = not dense_dynamic and not subject.dynamic  # fidelity: this model's states beside the dense's
        quality, states = None, None
        if wants_quality and wants_states:
            quality, states = quality_and_states(model, data)
        elif wants_quality:
            quality = task_quality(model, data)
        elif wants_states:
            states = hidden_states(model, data)
        entry = {} if quality is None else {"quality": quality}
        if served_by and quality is not None:
            quality["runtime"] = served_by
        if position == 0:
            dense_states = states
        elif dense_states is not None and states is not None:
            own_steps = subject.manifest[len(group.loaded.compression or []):]
            entry["fidelity"] = fidelity(dense_states, states, data, own_steps)
        results.append(entry)
    return results
