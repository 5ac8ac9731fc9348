"""Transcripts from a speech model's CTC head, their word and character error rates, and the padded batches
that CTC training and calibration read (whole utterances: a transcript covers all of its audio, so nothing is
cropped).

Evaluation only reads utterances one at a time (no padding, no attention mask), as classification does;
fine-tuning and the compression context import this, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from compbench.architectures.families import ctc_vocabulary_size, floating_dtype
from compbench.errors import InvalidInputError
from compbench.metrics import error_rate
from compbench.quality.ctc import greedy_transcripts

TRANSCRIPT_METRICS = ("wer", "cer")


def check_ctc_model(model: nn.Module, tokenizer, task_name: str) -> None:
    """A model with a CTC head whose outputs are the tokenizer's tokens, or the one error that says how to get
    one."""
    size = ctc_vocabulary_size(model)
    if size is None or tokenizer is None:
        raise InvalidInputError(
            f"task {task_name} transcribes speech with a CTC head trained on it: run compbench finetune --model M "
            f"--task {task_name} --out DIR, then measure --model DIR")
    if size != len(tokenizer):
        raise InvalidInputError(f"the model's CTC head has {size} outputs and the vocabulary saved beside it "
                                f"{len(tokenizer)} tokens: the folder mixes two models")


@torch.inference_mode()
def transcribe(model: nn.Module, tokenizer, waves: Sequence[np.ndarray]) -> list[str]:
    """Each whole utterance's greedy CTC transcript, one utterance at a time."""
    model.eval()
    device, dtype = next(model.parameters()).device, floating_dtype(model)
    transcripts = []
    for wave in waves:
        logits = model(input_values=torch.as_tensor(wave, dtype=dtype, device=device)[None]).logits
        transcripts.extend(greedy_transcripts(logits.float().cpu(), tokenizer))
    return transcripts


def transcript_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """``wer`` and ``cer`` of ``hypotheses`` against ``references`` over the whole split."""
    return {metric: error_rate(metric, references, hypotheses) for metric in TRANSCRIPT_METRICS}


def padded_audio(waves: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """Whole utterances zero-padded to the longest, with the attention mask that marks their samples."""
    longest = max(len(w) for w in waves)
    values = torch.zeros(len(waves), longest)
    mask = torch.zeros(len(waves), longest, dtype=torch.long)
    for row, wave in enumerate(waves):
        values[row, :len(wave)] = torch.as_tensor(wave, dtype=torch.float32)
        mask[row, :len(wave)] = 1
    return {"input_values": values, "attention_mask": mask}


def ctc_targets(tokenizer, transcripts: Sequence[str]) -> torch.Tensor:
    """Token ids of each transcript (spaces as the word delimiter), padded with -100 (which CTC losses skip)."""
    encoded = tokenizer(list(transcripts), padding=True, return_tensors="pt", return_attention_mask=True)
    return encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
