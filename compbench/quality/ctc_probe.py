"""The SUPERB protocol for speech recognition: a frozen upstream, a learned softmax-weighted sum of all its
hidden states per frame, and a small bidirectional LSTM downstream with a CTC head over the task's characters.

SUPERB's ASR task trains a two-layer BLSTM of 1024 units on LibriSpeech; on 2 CPU cores compbench's default
is smaller (:class:`~compbench.tasks.schema.ProbeSettings`, set in the task file under ``probe``), and the
record says which. The upstream
runs once per utterance (frozen, no padding); its states are kept in float16, and the downstream trains on
them: seeded Adam over batches of similar length for a fixed number of epochs, the last one kept (no dev
selection: the probe is part of measuring the upstream, as the classification probe is); its final train loss
is in the record.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from compbench.quality.batches import bucketed_order
from compbench.quality.ctc import ctc_tokenizer, ctc_vocabulary, greedy_transcripts
from compbench.quality.probe import utterance_states
from compbench.tasks import Examples
from compbench.tasks.schema import ProbeSettings


class RecognitionProbe(nn.Module):
    def __init__(self, states: int, width: int, options: ProbeSettings, vocabulary: int):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(states))
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.lstm = nn.LSTM(width, options.hidden, num_layers=options.layers, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * options.hidden, vocabulary)

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, states: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """(batch, frames, vocabulary) logits of (batch, states, frames, width) float states."""
        mixed = torch.einsum("l,blth->bth", self.layer_weights(), self.norm(states))
        packed = nn.utils.rnn.pack_padded_sequence(mixed, frames.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=states.shape[2])
        return self.head(out)


@torch.no_grad()
def frame_states(model: nn.Module, waves: list[np.ndarray]) -> list[torch.Tensor]:
    """Per utterance, every hidden state as (states, frames, width) float16."""
    model.eval()
    return [torch.stack(utterance_states(model, wave)).half() for wave in waves]


def _batch(states: list[torch.Tensor], index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    frames = torch.tensor([states[i].shape[1] for i in index])
    first = states[index[0]]
    batch = torch.zeros(len(index), first.shape[0], int(frames.max()), first.shape[2])
    for row, i in enumerate(index):
        batch[row, :, :states[i].shape[1]] = states[i].float()
    return batch, frames


@dataclass
class RecognitionResult:
    transcripts: list[str]
    layer_weights: list[float]
    final_train_loss: float
    options: dict


def probe_transcripts(model: nn.Module, train: Examples, evaluation: Examples,
                      options: ProbeSettings) -> RecognitionResult:
    """Train the recognition probe on ``model``'s frozen states of ``train`` and transcribe ``evaluation``."""
    vocabulary = ctc_vocabulary(train.transcripts)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = ctc_tokenizer(vocabulary, scratch)
    targets = [torch.tensor(tokenizer(t)["input_ids"]) for t in train.transcripts]
    states = frame_states(model, train.inputs)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(options.seed)
    try:
        probe = RecognitionProbe(states[0].shape[0], states[0].shape[2], options, len(vocabulary))
        optimizer = torch.optim.Adam(probe.parameters(), lr=options.learning_rate)
        ctc = nn.CTCLoss(blank=0, zero_infinity=True)
        rng = random.Random(options.seed)
        lengths = [s.shape[1] for s in states]
        for _ in range(options.epochs):
            total, count = 0.0, 0
            probe.train()
            for index in bucketed_order(lengths, options.batch_size, rng):
                batch, frames = _batch(states, index)
                log_probs = probe(batch, frames).log_softmax(dim=-1).transpose(0, 1)
                wanted = [targets[i] for i in index]
                loss = ctc(log_probs, torch.cat(wanted), frames, torch.tensor([len(t) for t in wanted]))
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(probe.parameters(), 5.0)
                optimizer.step()
                total, count = total + loss.item() * len(index), count + len(index)
        probe.eval()
        evaluated = frame_states(model, evaluation.inputs)
        transcripts = []
        with torch.no_grad():
            for start in range(0, len(evaluated), options.batch_size):
                index = list(range(start, min(len(evaluated), start + options.batch_size)))
                batch, frames = _batch(evaluated, index)
                transcripts += greedy_transcripts(probe(batch, frames), tokenizer, frames.tolist())
    finally:
        torch.random.set_rng_state(generator_state)
    return RecognitionResult(transcripts, [round(float(w), 6) for w in probe.layer_weights().detach()],
                             round(total / count, 6), asdict(options))
