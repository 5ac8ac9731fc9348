"""WavLM attention that works with a subset of its heads and with replaced projections.

transformers' WavLMAttention runs torch's ``multi_head_attention_forward`` on its projection
weights, which needs every head and plain Linear layers. Its gated relative position bias is
per *original* head: the gate reads the layer input split into the original heads, and layer
0's bias (one per original head) is passed to every layer. This subclass keeps the original
head indices it still has (``kept_heads``), slices bias and gate inputs to them, calls q/k/v/o
as modules and attends with SDPA, so head pruning, low-rank projections and quantization work.
With every head kept it computes what WavLMAttention computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.wavlm.modeling_wavlm import WavLMAttention


class CompbenchWavLMAttention(WavLMAttention):
    kept_heads: list[int]
    original_num_heads: int

    def forward(self, hidden_states, attention_mask=None, position_bias=None, index=0, **kwargs):
        bsz, length, _ = hidden_states.size()
        heads, kept = self.original_num_heads, self.kept_heads
        if position_bias is None:  # first layer: the bias of every original head
            position_bias = self.compute_bias(length, length).unsqueeze(0).repeat(bsz, 1, 1, 1)
            position_bias = position_bias.view(bsz * heads, length, length)
        bias = position_bias.view(bsz, heads, length, length)[:, kept]

        gate_input = hidden_states.view(bsz, length, heads, -1).permute(0, 2, 1, 3)[:, kept]
        projected = self.gru_rel_pos_linear(gate_input).view(gate_input.shape[:-1] + (2, 4)).sum(-1)
        gate_a, gate_b = torch.sigmoid(projected).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0
        mask = gate * bias
        if attention_mask is not None:
            padding = attention_mask.ne(1)[:, None, None, :]
            mask = mask.masked_fill(padding, float("-inf"))

        def split(x):
            return x.view(bsz, length, len(kept), self.head_dim).transpose(1, 2)

        query, key, value = (split(self.q_proj(hidden_states)), split(self.k_proj(hidden_states)),
                             split(self.v_proj(hidden_states)))
        dropout = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.to(query.dtype),
                                                  dropout_p=dropout, scale=self.scaling)
        attended = attended.transpose(1, 2).reshape(bsz, length, len(kept) * self.head_dim)
        return self.out_proj(attended), None, position_bias


def make_modular(attention: WavLMAttention) -> CompbenchWavLMAttention:
    """Switch a WavLMAttention (in place) to the subset-capable forward, keeping every head."""
    if not isinstance(attention, CompbenchWavLMAttention):
        attention.original_num_heads = attention.num_heads
        attention.kept_heads = list(range(attention.num_heads))
        attention.__class__ = CompbenchWavLMAttention
    return attention


def keep_wavlm_heads(attention: WavLMAttention, heads: list[int]) -> None:
    """Record which of the current heads stay (positions in ``kept_heads``) and slice the gate constant."""
    attention = make_modular(attention)
    attention.kept_heads = [attention.kept_heads[h] for h in heads]
    with torch.no_grad():
        constant = attention.gru_rel_pos_const.detach()[:, heads].clone()
    attention.gru_rel_pos_const = torch.nn.Parameter(constant, requires_grad=attention.gru_rel_pos_const.requires_grad)
