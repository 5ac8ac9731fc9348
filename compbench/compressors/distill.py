"""distill: train the current variant (the student) to match the pipeline's input model (the teacher).

A pipeline step, e.g. ``layer_drop=0.5,distill`` (DistilBERT-style, with ``which: alternate``) or
``head_pruning=0.5,distill`` (pruning, then distillation to recover). It learns from the task's
train split, given by the caller in the compression context, and returns the student without
any training-only part.

Losses (weights are options; a weight of 0 turns a loss off):

- ``hidden``: hidden-state matching through one linear prediction head per target teacher layer,
  L1 plus ``cosine_weight`` * (-log sigmoid(cosine)) per frame or token, summed over targets
  (DistilHuBERT, Chang et al. 2022). Padding tokens are left out.
- ``kl``: KL divergence of the student's logits from the teacher's at ``temperature``, scaled by
  its square (Hinton et al. 2015); needs both to have a head for the task's labels. A CTC head's
  logits are compared frame by frame (the mean over the frames that are not padding).
- ``ce``: cross-entropy of the student's head on the task's labels; the CTC loss of a CTC head on a
  transcription task's transcripts.

Recipes:

- ``layers``: student layer j predicts teacher layer round((j + 1) * teacher_layers / student_layers),
  heads initialised to the identity where the widths match. Defaults: every loss the models allow.
- ``distilhubert``: the student is the current variant's feature encoder and first
  ``student_layers`` layers, copied, without any task head; three heads on its last layer predict
  teacher layers 4, 8 and 12 (evenly spaced for other depths); SpecAugment (and layer drop) off in
  the student, the teacher in eval mode; it learns from the task's audio without labels. Evaluate the student
  with the probe (``measure --task``) or fine-tune a head on it.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, always_needs_task, register
from compbench.compression.context import Batch, CompressionContext, has_task_head
from compbench.compression.losses import TRAINING_OFF, hidden_loss, target_layers
from compbench.counting.weights import has_quantized_weights
from compbench.errors import InvalidInputError
from compbench.importance.gates import valid_positions
from compbench.schedule import warmup_then_linear_decay
from compbench.surgery.layers import keep_layers

RECIPES = {  # defaults that options left unset take; None: on where the models allow it
    "layers": {"hidden": 1.0, "kl": None, "ce": None, "lr": 5e-5},
    "distilhubert": {"hidden": 1.0, "kl": 0.0, "ce": 0.0, "lr": 2e-4},
}
DISTILHUBERT_TARGETS = 3
LOSS_WINDOW = 20  # final losses: the mean over this many last steps
DEV_BATCHES = 8  # held-out batches of the dev split for the targets' final fidelity


def kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
            mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, times its square: per example for (batch, classes) logits,
    per frame for a CTC head's (batch, frames, tokens), averaged over the frames ``mask`` keeps."""
    student = functional.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = functional.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if student.dim() == 2:
        return functional.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature ** 2
    per_frame = functional.kl_div(student, teacher, log_target=True, reduction="none").sum(dim=-1)
    mask = torch.ones_like(per_frame) if mask is None else mask.to(per_frame.dtype)
    return (per_frame * mask).sum() / mask.sum().clamp_min(1) * temperature ** 2


class _Setup:
    """Who reads what: the student (maybe truncated), the teacher, the mapped layers and the prediction heads."""

    def __init__(self, student: nn.Module, teacher: nn.Module, options: dict, data):
        recipe = options["recipe"]
        self.dropped: list[int] = []
        teacher_adapter = self.teacher_adapter = ModelAdapter(teacher)
        if recipe == "distilhubert":
            if teacher_adapter.modality != "speech":
                raise InvalidInputError("distill: recipe distilhubert is for speech models")
            adapter = ModelAdapter(student)
            count = len(adapter.layers())
            keep = options["student_layers"]
            if not 1 <= keep <= count:
                raise InvalidInputError(f"distill: student_layers must be 1..{count}, got {keep}")
            self.dropped = list(range(keep, count))
            keep_layers(adapter, range(keep))
            student = adapter.base  # no task head: the student learns representations, not labels
            teacher_count = len(teacher_adapter.layers())
            self.targets = target_layers(teacher_count, min(DISTILHUBERT_TARGETS, teacher_count))
            self.sources = [keep] * len(self.targets)
        else:
            student_count, teacher_count = len(ModelAdapter(student).layers()), len(teacher_adapter.layers())
            self.targets = target_layers(teacher_count, student_count)
            self.sources = list(range(1, student_count + 1))
        self.student, self.teacher = student, teacher
        defaults = RECIPES[recipe]
        both_heads = has_task_head(student, data) and has_task_head(teacher, data)
        self.weights = {
            "hidden": _resolved(options["hidden"], defaults["hidden"], True),
            "kl": _resolved(options["kl"], defaults["kl"], both_heads),
            "ce": _resolved(options["ce"], defaults["ce"], has_task_head(student, data)),
        }
        if self.weights["kl"] and not both_heads:
            raise InvalidInputError(f"distill: kl needs the student and the teacher to classify into {data.task}'s "
                                    "labels (fine-tune the teacher first: compbench finetune)")
        if self.weights["ce"] and not has_task_head(student, data):
            raise InvalidInputError(f"distill: ce needs a student with a head for {data.task}'s labels")
        if not any(self.weights.values()):
            raise InvalidInputError("distill: every loss weight is 0")
        hidden_student = student.config.hidden_size
        hidden_teacher = teacher.config.hidden_size
        self.heads = nn.ModuleList(nn.Linear(hidden_student, hidden_teacher) for _ in self.targets)
        if recipe == "layers" and hidden_student == hidden_teacher:
            for head in self.heads:  # the student's layers start as the teacher's: start from the identity
                nn.init.eye_(head.weight)
                nn.init.zeros_(head.bias)

    def losses(self, batch: Batch, cosine_weight: float, temperature: float) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            taught = self.teacher(**batch.inputs, output_hidden_states=self.weights["hidden"] > 0)
        extra = {"labels": batch.labels} if self.weights["ce"] else {}
        out = self.student(**batch.inputs, **extra, output_hidden_states=self.weights["hidden"] > 0)
        terms: dict[str, torch.Tensor] = {}
        positions = (out.hidden_states[-1] if self.weights["hidden"] else out.logits).shape[1]
        mask = batch.inputs.get("attention_mask")
        if mask is not None:  # tokens or frames that are not padding
            mask = valid_positions(self.teacher_adapter, batch, positions).to(mask.device)
        if self.weights["hidden"]:
            parts = [hidden_loss(head(out.hidden_states[source]), taught.hidden_states[target], mask, cosine_weight)
                     for head, source, target in zip(self.heads, self.sources, self.targets, strict=True)]
            terms["hidden"] = sum(p[0] for p in parts)
            for target, part in zip(self.targets, parts, strict=True):
                terms[f"l1_{target}"], terms[f"cosine_{target}"] = part[1].detach(), part[2].detach()
        if self.weights["kl"]:
            terms["kl"] = kl_loss(out.logits, taught.logits, temperature, mask)
        if self.weights["ce"]:
            terms["ce"] = out.loss
        terms["total"] = sum(self.weights[name] * terms[name] for name in ("hidden", "kl", "ce") if name in terms)
        return terms


def _resolved(option: float | None, default: float | None, allowed: bool) -> float:
    if option is not None:
        return float(option)
    if default is not None:
        return float(default)
    return 1.0 if allowed else 0.0


def _autocast(precision: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def distill(model, amount, options: dict, context: CompressionContext):
    data = context.require_data("distill")
    teacher = context.teacher
    if teacher is None:
        raise InvalidInputError("distill needs the pipeline's input model as its teacher")
    for name in ("batch_size", "epochs"):
        if options[name] < 1:
            raise InvalidInputError(f"distill: {name} must be >= 1, got {options[name]}")
    if options["steps"] is not None and options["steps"] < 1:
        raise InvalidInputError(f"distill: steps must be >= 1, got {options['steps']}")
    if has_quantized_weights(model) or not all(p.dtype == torch.float32 for p in model.parameters()):
        raise InvalidInputError("distill trains float32 weights: put int8_dynamic, bf16 or fp16 after distill")
    setup = _Setup(model, teacher, options, data)
    student, device = setup.student, context.device
    home = next(student.parameters()).device
    teacher_training = teacher.training
    teacher.eval()
    teacher.to(device)
    student.to(device)
    setup.heads.to(device)
    saved = {name: getattr(student.config, name) for name in TRAINING_OFF if hasattr(student.config, name)}
    for name in saved:  # hidden states must line up with the teacher's, frame for frame and layer for layer
        setattr(student.config, name, TRAINING_OFF[name])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(context.seed)
    start = time.perf_counter()
    try:
        history, seen, steps = _train(setup, options, context)
        dev = _dev_fidelity(setup, options, context)
    finally:
        torch.random.set_rng_state(generator_state)
        teacher.to(home)
        teacher.train(teacher_training)
        for name, value in saved.items():
            setattr(student.config, name, value)
    student.eval().to(home)
    final = {name: round(sum(h[name] for h in history[-LOSS_WINDOW:]) / len(history[-LOSS_WINDOW:]), 6)
             for name in history[-1]}
    first = {name: round(value, 6) for name, value in history[0].items()}
    changes = {"recipe": options["recipe"], "loss_weights": setup.weights, "steps": steps,
               "targets": [{"student_layer": s, "teacher_layer": t} for s, t in
                           zip(setup.sources, setup.targets, strict=True)] if setup.weights["hidden"] else [],
               "first_losses": first, "final_losses": final, "dev_fidelity": dev,
               "data": context.data_seen("train", seen, epochs=round(steps / _steps_per_epoch(data, options), 3),
                                         batch_size=options["batch_size"]),
               "seconds": round(time.perf_counter() - start, 1)}
    if setup.dropped:
        layers_after = len(ModelAdapter(student).layers())
        changes.update(dropped_layers=setup.dropped, layers_after=layers_after, removed=len(setup.dropped),
                       total=layers_after + len(setup.dropped), unit="layers removed")
    return student, changes


def _steps_per_epoch(data, options: dict) -> int:
    return math.ceil(data.examples("train") / options["batch_size"])


def _train(setup: _Setup, options: dict, context: CompressionContext) -> tuple[list[dict], int, int]:
    data, device = context.data, context.device
    per_epoch = _steps_per_epoch(data, options)
    total = options["steps"] or per_epoch * options["epochs"]
    parameters = [p for p in list(setup.student.parameters()) + list(setup.heads.parameters()) if p.requires_grad]
    lr = options["lr"] if options["lr"] is not None else RECIPES[options["recipe"]]["lr"]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=options["weight_decay"])
    schedule = warmup_then_linear_decay(optimizer, options["warmup"], total)
    setup.student.train()
    setup.heads.train()
    history, seen, step, epoch = [], 0, 0, 0
    while step < total:
        for batch in data.batches("train", options["batch_size"], context.seed + epoch):
            batch = batch.to(device)
            with _autocast(options["precision"], device):
                terms = setup.losses(batch, options["cosine_weight"], options["temperature"])
            terms["total"].backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            history.append({name: float(value.detach()) for name, value in terms.items()})
            seen += batch.size
            step += 1
            if context.progress is not None:
                context.progress(f"distill step {step}/{total} loss {history[-1]['total']:.3f}", step / total)
            if step == total:
                break
        epoch += 1
    return history, seen, step


@torch.no_grad()
def _dev_fidelity(setup: _Setup, options: dict, context: CompressionContext) -> dict | None:
    """Per target on held-out dev batches: the prediction heads' L1 and cosine to the teacher's layer."""
    if not setup.weights["hidden"] or context.data.examples("dev") == 0:
        return None
    setup.student.eval()
    setup.heads.eval()
    sums: dict[str, float] = {}
    batches = 0
    for batch in context.data.batches("dev", options["batch_size"], context.seed):
        with _autocast(options["precision"], context.device):
            terms = setup.losses(batch.to(context.device), options["cosine_weight"], options["temperature"])
        for name, value in terms.items():
            if name.startswith(("l1_", "cosine_")):
                sums[name] = sums.get(name, 0.0) + float(value)
        batches += 1
        if batches == DEV_BATCHES:
            break
    return {"split": "dev", "batches": batches,
            "targets": [{"teacher_layer": t, "l1": round(sums[f"l1_{t}"] / batches, 6),
                         "cosine": round(sums[f"cosine_{t}"] / batches, 6)} for t in setup.targets]}


register(Compressor(
    name="distill", compress=distill, takes_amount=False, uses_context=True, needs_task=always_needs_task,
    description="train the variant to match the pipeline's input model on the task's train inputs",
    options={
        "recipe": Option(str, "layers", "layers (mapped hidden states, logits, labels) or distilhubert "
                         "(first layers of a speech model, three targets, no labels)", choices=tuple(RECIPES)),
        "hidden": Option(float, None, "weight of hidden-state matching (default 1)"),
        "kl": Option(float, None, "weight of the logits' KL divergence (default: 1 where both have task heads)"),
        "ce": Option(float, None, "weight of the labels' cross-entropy (default: 1 where the student has a head)"),
        "cosine_weight": Option(float, 1.0, "lambda of -log sigmoid(cosine) beside L1"),
        "temperature": Option(float, 2.0, "softmax temperature of the KL loss"),
        "epochs": Option(int, 1, "passes over the train split"),
        "steps": Option(int, None, "optimizer steps (overrides epochs)"),
        "batch_size": Option(int, 16, "examples per step"),
        "lr": Option(float, None, "peak learning rate of AdamW (default: 5e-5 layers, 2e-4 distilhubert)"),
        "warmup": Option(float, 0.1, "fraction of steps of linear warm-up (then linear decay)"),
        "weight_decay": Option(float, 0.01, "AdamW weight decay"),
        "student_layers": Option(int, 2, "distilhubert: layers the student keeps"),
        "precision": Option(str, "fp32", "bf16 runs forward passes under bfloat16 autocast",
                            choices=("fp32", "bf16")),
    }))
