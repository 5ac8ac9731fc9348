"""Trajectory importance of heads and FFN neurons (OPTIN: Khaki & Plataniotis, ICLR 2024).

Each unit is masked in turn and the model is run on the calibration batch. Its importance is
what masking it changes downstream: for every layer from its own onwards, the manifold
distillation distance between the masked and the unmasked model's FFN outputs (each token vector
L2-normalised, the mean squared difference of their Gram matrices over a token sample), plus
``kl_weight`` times the KL divergence of the output logits at ``temperature`` (scaled by the
temperature squared; a CTC head's per-frame logits: the mean over the frames that are not padding). A
model without a task head has no logits: only the feature terms.

What compbench does differently from the reference code: every unit's score is the same formula
(no multipliers that depend on its index); the mask of one unit is set only for its own forward;
the token sample is drawn once per call, from real tokens only (never padding), and is the same
for every unit. For speed, outputs of everything before the masked unit are computed once and
replayed, and several masks run in one batched forward (one copy of the batch per mask); neither
changes a score beyond float rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from compbench.compression.context import Batch
from compbench.eval_mode import evaluating
from compbench.importance.gates import HEADS, KINDS, UnitGates, valid_positions
from compbench.surgery.linear import effective_weight

TOKENS_PER_FORWARD = 4096  # masks per batched forward: copies of the batch up to about this many tokens
# modules before the first Transformer layer whose outputs no gate changes (replayed, not recomputed)
MASK_FREE_PREFIX = ("feature_projection", "encoder.pos_conv_embed")


def _replicate(value, copies: int):
    """``value`` (a tensor, or a tuple of them) repeated ``copies`` times along the batch dimension."""
    if isinstance(value, torch.Tensor):
        return value.repeat(copies, *([1] * (value.dim() - 1)))
    if isinstance(value, tuple | list):
        return type(value)(_replicate(v, copies) for v in value)
    return value


def _normalised_gram(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(copies, T, T) cosine Gram matrices of the sampled tokens of (copies, batch, length, dim) features."""
    tokens = F.normalize(features[:, rows, cols].float(), dim=-1)
    return tokens @ tokens.transpose(1, 2)


def _mask_free_modules(adapter) -> list[nn.Module]:
    names = (adapter.layout.front_end,) + MASK_FREE_PREFIX
    return [adapter.base.get_submodule(name) for name in names if _has_submodule(adapter.base, name)]


def _has_submodule(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


@contextmanager
def _replaying(outputs: dict[nn.Module, object]):
    """Modules that return the given outputs instead of computing them (their hooks still run)."""
    def returning(value):
        return lambda *args, **kwargs: value

    for module, value in outputs.items():
        module.forward = returning(value)
    try:
        yield
    finally:
        for module in outputs:
            del module.forward


def trajectory_importance(gates: UnitGates, batch: Batch, tokens: int, kl_weight: float, temperature: float,
                          seed: int, progress: Callable[[float], None] | None = None
                          ) -> tuple[dict[str, list[torch.Tensor]], dict]:
    """Importance of every head and neuron (``{kind: [scores per layer]}``) and what it was computed from.

    Heads are masked by their gates. A neuron's mask changes its layer's FFN output by exactly its
    activation times its output column, so that output is computed as the unmasked one minus
    that rank-one term, and the layer's attention and first FFN projection are replayed."""
    started = time.perf_counter()
    adapter = gates.adapter
    model = adapter.model
    layers = adapter.layers()
    attention = [layer.get_submodule(adapter.layout.attention_block) for layer in layers]
    ffn_in = [adapter.ffn(i)[0] for i in range(len(layers))]
    ffn_out = [adapter.ffn(i)[1] for i in range(len(layers))]
    prefix = _mask_free_modules(adapter)
    replayed: dict[nn.Module, object] = {}
    activations: dict[int, torch.Tensor] = {}
    features: dict[int, torch.Tensor] = {}

    def keep_output(module, args, output):
        replayed[module] = output

    dense_hooks = [m.register_forward_hook(keep_output) for m in prefix + layers + attention + ffn_in]
    dense_hooks += [m.register_forward_pre_hook(lambda module, args, i=i: activations.__setitem__(i, args[0]))
                    for i, m in enumerate(ffn_out)]
    feature_hooks = [m.register_forward_hook(lambda module, args, output, i=i: features.__setitem__(i, output))
                     for i, m in enumerate(ffn_out)]
    try:
        with torch.no_grad(), evaluating(model), gates:
            gates.reset()
            output = model(**batch.inputs)
            for handle in dense_hooks:
                handle.remove()
            dense_logits = getattr(output, "logits", None)
            dense_features = dict(features)
            length = dense_features[0].shape[1]
            valid = valid_positions(adapter, batch, length)
            positions = valid.nonzero()
            generator = torch.Generator().manual_seed(seed)
            sample = positions[torch.randperm(len(positions), generator=generator)[:tokens]]
            rows, cols = sample[:, 0], sample[:, 1]
            dense_grams = {i: _normalised_gram(f[None], rows, cols) for i, f in dense_features.items()}
            if dense_logits is not None:
                dense_p = F.softmax(dense_logits.float() / temperature, dim=-1)
            copies_max = max(1, TOKENS_PER_FORWARD // (batch.size * length))
            scores = {kind: [torch.zeros(n) for n in gates.units(kind)] for kind in KINDS}
            total = sum(sum(gates.units(kind)) for kind in KINDS)
            done, forwards = 0, 0
            for layer in range(len(layers)):
                for kind in KINDS:
                    units = gates.units(kind)[layer]
                    for start in range(0, units, copies_max):
                        chunk = torch.arange(start, min(units, start + copies_max))
                        copies = len(chunk)
                        same = {m: _replicate(replayed[m], copies) for m in prefix + layers[:layer]}
                        if kind == HEADS:
                            gate = torch.ones(copies, units)
                            gate[torch.arange(copies), chunk] = 0.0
                            gates.values[HEADS][layer] = gate.repeat_interleave(batch.size, dim=0)
                        else:
                            same[attention[layer]] = _replicate(replayed[attention[layer]], copies)
                            same[ffn_in[layer]] = _replicate(replayed[ffn_in[layer]], copies)
                            weight = effective_weight(ffn_out[layer])
                            removed = activations[layer][..., chunk].movedim(-1, 0)[..., None] * \
                                weight.T[chunk].reshape(copies, *([1] * (activations[layer].dim() - 1)), -1)
                            same[ffn_out[layer]] = (dense_features[layer][None] - removed).flatten(0, 1)
                        features.clear()
                        with _replaying(same):
                            masked = model(**{k: _replicate(v, copies) for k, v in batch.inputs.items()})
                        forwards += 1
                        score = torch.zeros(copies)
                        for i in range(layer, len(layers)):
                            f = features[i].reshape(copies, batch.size, *features[i].shape[1:])
                            score += (_normalised_gram(f, rows, cols) - dense_grams[i]).pow(2).mean(dim=(1, 2))
                        if dense_logits is not None and kl_weight:
                            log_q = F.log_softmax(masked.logits.float() / temperature, dim=-1)
                            log_q = log_q.reshape(copies, *dense_p.shape)
                            kl = (dense_p * (dense_p.clamp_min(1e-30).log() - log_q)).sum(-1)
                            if kl.dim() == 3:  # per frame (a CTC head): the mean over each example's frames
                                frames = valid.to(kl.dtype)
                                kl = (kl * frames).sum(-1) / frames.sum(-1).clamp_min(1)
                            kl = kl.mean(-1)
                            score += kl_weight * temperature ** 2 * kl
                        scores[kind][layer][chunk] = score
                        done += copies
                        if progress is not None:
                            progress(done / total)
                    gates.values[kind][layer] = torch.ones(units)
    finally:
        for handle in dense_hooks + feature_hooks:
            handle.remove()
    info = {"examples": batch.size, "tokens_sampled": len(rows), "token_positions": len(positions),
            "kl": dense_logits is not None and kl_weight > 0, "kl_weight": kl_weight, "temperature": temperature,
            "forwards": forwards, "seconds": round(time.perf_counter() - started, 2)}
    return scores, info
