"""Quality of a model or variant on a task, and its fidelity to the dense model.

Text tasks (protocol ``finetune``) evaluate a fine-tuned classifier (``compbench finetune``)
on the evaluation split. Speech tasks (protocol ``superb_probe``) train the SUPERB probe on
the model's own frozen features from the train split and evaluate it; a variant gets its own
probe, as SUPERB does for every upstream. A speech model with a head fine-tuned on the task
(``compbench finetune``) is evaluated with its own head instead (``protocol: finetune`` in
the result). Transcription tasks (speech recognition) evaluate a model's CTC head, fine-tuned on the task,
by greedy decoding of each whole utterance: the task's metric (``wer`` or ``cer``) and both error rates,
over the words and characters of the whole split. Fidelity compares hidden states of a variant and its
dense model on up to ``FIDELITY_EXAMPLES`` evaluation examples (a text classifier's kept from the forwards that
classified the split, so they cost no forward of their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compbench.architectures.families import classifier_labels, ctc_vocabulary_size, floating_dtype
from compbench.errors import InvalidInputError
from compbench.metrics import classification_score
from compbench.quality.classify import (
    TEXT_MAX_TOKENS,
    load_tokenizer,
    speech_predictions,
    text_predictions,
    text_predictions_and_states,
)
from compbench.quality.ctc_probe import probe_transcripts
from compbench.quality.fidelity import layer_fidelity, linear_cka, mean_cosine
from compbench.quality.probe import pooled_layer_features, train_probe, utterance_states
from compbench.quality.transcribe import check_ctc_model, transcribe, transcript_scores
from compbench.tasks import Examples, Task, load_split
from compbench.tasks.schema import MODALITY_OF_INPUT, ProbeSettings

FIDELITY_EXAMPLES = 100


@dataclass
class TaskData:
    task: Task
    train: Examples | None
    evaluation: Examples
    tokenizer: object | None = None
    whole_evaluation: int | None = None  # the evaluation split's size where a limit took fewer of it


def spread_indices(count: int, limit: int | None) -> list[int]:
    """At most ``limit`` of ``count`` indices, spread evenly over them (deterministic)."""
    if limit is None or count <= limit:
        return list(range(count))
    step = count / limit
    return [int(i * step) for i in range(limit)]


def limit_examples(examples: Examples, limit: int | None) -> Examples:
    """At most ``limit`` examples, spread evenly over the split (deterministic)."""
    if limit is None or len(examples) <= limit:
        return examples
    return examples.subset(spread_indices(len(examples), limit))


def prepare_task(task: Task, modality: str, checkpoint: str | None, data_root: str | None,
                 limit: int | None = None) -> TaskData:
    check_task_modality(task, modality)
    split = load_split(task, task.evaluate_on, data_root)
    evaluation = limit_examples(split, limit)
    whole = len(split) if len(evaluation) < len(split) else None
    if task.protocol == "finetune":
        return TaskData(task, None, evaluation, load_tokenizer(checkpoint) if checkpoint else None, whole)
    # a speech recogniser measured on a probed task is evaluated with its own CTC head and vocabulary
    tokenizer = load_tokenizer(checkpoint) if task.output == "transcript" and checkpoint and \
        (Path(checkpoint) / "vocab.json").is_file() else None
    return TaskData(task, limit_examples(load_split(task, "train", data_root), limit), evaluation, tokenizer, whole)


def check_task_modality(task: Task, modality: str) -> None:
    """The one error for a task whose inputs a ``modality`` model cannot take."""
    if MODALITY_OF_INPUT[task.input] != modality:
        raise InvalidInputError(f"task {task.name} takes {task.input}; the model is a {modality} model")


def check_model_for_task(model: nn.Module, task: Task) -> None:
    """A text task (protocol finetune) needs a classifier fine-tuned on it, with the task's labels; a
    transcription task a CTC head."""
    if task.protocol != "finetune":
        return
    if task.output == "transcript":
        if ctc_vocabulary_size(model) is None:
            check_ctc_model(model, None, task.name)
        return
    if not has_head_for(model, task):
        raise InvalidInputError(
            f"task {task.name} is evaluated on a fine-tuned classifier with labels {task.labels}: run "
            f"compbench finetune --model M --task {task.name} --out DIR, then measure --model DIR")


def has_head_for(model: nn.Module, task: Task) -> bool:
    """A classifier whose head was trained on ``task``'s labels (evaluated with its own head)."""
    return classifier_labels(model) == task.labels


def _quality_header(data: TaskData) -> dict:
    """What every quality result says of the task and the examples it saw."""
    task = data.task
    result = {"task": task.name, "task_version": task.version, "metric": task.metric, "split": task.evaluate_on,
              "protocol": task.protocol, "examples": {task.evaluate_on: len(data.evaluation)}}
    if data.whole_evaluation is not None:  # a limit (--task-limit) took part of the split
        result["split_examples"] = data.whole_evaluation
    return result


def task_quality(model: nn.Module, data: TaskData) -> dict:
    task = data.task
    result = _quality_header(data)
    labels = data.evaluation.labels
    if task.output == "transcript":
        return result | _transcript_quality(model, data)
    if task.protocol == "finetune":
        check_model_for_task(model, task)
        result["value"] = classification_score(task.metric, text_predictions(model, data.tokenizer, data.evaluation),
                                               labels)
        return result
    if has_head_for(model, task):  # a speech classifier trained on this task: its own head, no probe
        result["protocol"] = "finetune"
        result["value"] = classification_score(task.metric, speech_predictions(model, data.evaluation.inputs), labels)
        return result
    train = pooled_layer_features(model, data.train.inputs)
    probe = train_probe(train, data.train.labels, classes=len(task.labels))
    predictions = probe.predict(pooled_layer_features(model, data.evaluation.inputs)).numpy()
    result["value"] = classification_score(task.metric, predictions, labels)
    result["examples"]["train"] = len(data.train)
    result["layer_weights"] = [round(float(w), 6) for w in probe.probe.layer_weights().detach()]
    return result


def _transcript_quality(model: nn.Module, data: TaskData) -> dict:
    """A transcription task's quality: the model's own CTC head where it has one (``protocol: finetune``),
    else (``superb_probe``) the recognition probe trained on its frozen states."""
    task, references = data.task, data.evaluation.transcripts
    result = {"words": sum(len(t.split()) for t in references), "characters": sum(len(t) for t in references)}
    if task.protocol == "finetune" or ctc_vocabulary_size(model) is not None and data.tokenizer is not None:
        check_ctc_model(model, data.tokenizer, task.name)
        hypotheses = transcribe(model, data.tokenizer, data.evaluation.inputs)
        result["protocol"] = "finetune"
    else:
        probe = probe_transcripts(model, data.train, data.evaluation, task.probe or ProbeSettings())
        hypotheses = probe.transcripts
        result.update(layer_weights=probe.layer_weights, probe=probe.options,
                      probe_final_train_loss=probe.final_train_loss, examples={task.evaluate_on:
                                                                              len(data.evaluation),
                                                                              "train": len(data.train)})
    scores = transcript_scores(references, hypotheses)
    return result | {"value": scores[task.metric], "scores": scores}


def classifies_text(task: Task) -> bool:
    """A text task evaluated by the model's own classifier: its quality and its fidelity states come from the same
    forwards (:func:`quality_and_states`)."""
    return task.input == "text" and task.protocol == "finetune" and task.output != "transcript"


def fidelity_examples(data: TaskData) -> list[int]:
    """The evaluation examples fidelity compares: at most :data:`FIDELITY_EXAMPLES`, spread over the split."""
    return spread_indices(len(data.evaluation), FIDELITY_EXAMPLES)


def quality_and_states(model: nn.Module, data: TaskData) -> tuple[dict, list[torch.Tensor]]:
    """:func:`task_quality` and :func:`hidden_states` of one model; for a text classifier from the same forwards
    (each fidelity example's states kept from the batch it was classified in), otherwise one after the other."""
    if not classifies_text(data.task):
        return task_quality(model, data), hidden_states(model, data)
    check_model_for_task(model, data.task)
    predictions, states = text_predictions_and_states(model, data.tokenizer, data.evaluation, fidelity_examples(data))
    result = _quality_header(data) | {"value": classification_score(data.task.metric, predictions,
                                                                     data.evaluation.labels)}
    return result, states


@torch.no_grad()
def hidden_states(model: nn.Module, data: TaskData) -> list[torch.Tensor]:
    """Per hidden state (the embeddings', then each layer's output): every frame or (non-padding) token of the
    fidelity examples (:func:`fidelity_examples`), stacked in their order. Speech runs one utterance at a time;
    a text classifier's states are those of its quality forwards (:func:`quality_and_states`: the whole split,
    batched by length), so a model's states do not depend on whether its quality was wanted."""
    model.eval()
    if classifies_text(data.task):
        return quality_and_states(model, data)[1]
    if data.task.input != "audio":
        raise InvalidInputError(f"{data.task.name}: fidelity compares a text model's states on a classification task")
    examples = data.evaluation.subset(fidelity_examples(data))
    collected = [utterance_states(model, item) for item in examples.inputs]
    return [torch.cat(layer) for layer in zip(*collected, strict=True)]


def fidelity(dense_states: list[torch.Tensor], variant_states: list[torch.Tensor], data: TaskData,
             manifest: list[dict] | None) -> dict:
    """Per-layer CKA and cosine of a variant's hidden states (:func:`hidden_states`) against the dense layers each
    variant layer descends from, and of the output.

    ``last_*`` compares the variant's last layer with the dense layer it descends from (1 for a
    layer-dropped model); ``output_*`` compares it with the dense model's last layer: how much of
    what a head reads survived."""
    layers = layer_fidelity(dense_states, variant_states, manifest)
    return {"split": data.task.evaluate_on, "examples": len(fidelity_examples(data)),
            "layers": layers, "mean_cka": sum(x["cka"] for x in layers) / len(layers),
            "last_cka": layers[-1]["cka"], "last_cosine": layers[-1]["cosine"],
            "output_cka": linear_cka(dense_states[-1], variant_states[-1]),
            "output_cosine": mean_cosine(dense_states[-1], variant_states[-1])}


def single_example_inputs(model: nn.Module, data: TaskData) -> list[dict[str, torch.Tensor]]:
    """Each evaluation example as the model's inputs, alone (batch of one, no padding), on the model's
    device: tokenized as :func:`task_quality` tokenizes text, whole utterances for speech."""
    parameter = next(model.parameters())
    if data.task.input == "audio":
        dtype = floating_dtype(model)
        return [{"input_values": torch.as_tensor(wave, dtype=dtype, device=parameter.device)[None]}
                for wave in data.evaluation.inputs]
    if data.tokenizer is None:
        raise InvalidInputError(f"{data.task.name}: per-example inputs need the model's tokenizer")
    # alone, an example has no padding: no attention mask is needed, and its token types are the default zeros
    return [{"input_ids": data.tokenizer([text], truncation=True, max_length=TEXT_MAX_TOKENS,
                                         return_tensors="pt")["input_ids"].to(parameter.device)}
            for text in data.evaluation.inputs]


def batched_example_inputs(model: nn.Module, data: TaskData, batch: int) -> list[dict[str, torch.Tensor]]:
    """The evaluation examples in order, ``batch`` at a time, as the model's inputs: tokenized as
    :func:`single_example_inputs` tokenizes them, padded to each batch's longest with its attention mask (text
    tasks only: speech models here take unpadded utterances)."""
    if data.task.input == "audio":
        raise InvalidInputError(f"{data.task.name}: examples are timed in batches on text tasks only; measure "
                                "speech examples one at a time (--batch 1)")
    if data.tokenizer is None:
        raise InvalidInputError(f"{data.task.name}: per-example inputs need the model's tokenizer")
    device = next(model.parameters()).device
    texts = list(data.evaluation.inputs)
    batches = []
    for start in range(0, len(texts), batch):
        encoded = data.tokenizer(texts[start:start + batch], truncation=True, max_length=TEXT_MAX_TOKENS,
                                 padding=True, return_tensors="pt")
        batches.append({"input_ids": encoded["input_ids"].to(device),
                        "attention_mask": encoded["attention_mask"].to(device)})
    return batches
