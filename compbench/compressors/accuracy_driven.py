"""accuracy_driven: remove what a fine-tuned model does not need for its task (a reconstruction of AxFormer).

AxFormer (Nagarajan et al.) greedily removes parts of a fine-tuned Transformer that do not help
its task, coarse to fine, keeping a removal only when the dev metric holds; then switches chosen
layers to sparse hard attention. Its exact search order and thresholds are not public. This is
compbench's reconstruction, and the manifest records the order and ``epsilon``:

1. whole layers, from the last to the first;
2. whole blocks of the layers left, from the last layer to the first, FFN before attention (a
   removed block adds only its output bias; its MACs fall to zero);
3. single heads of the attention blocks left, last layer first, heads in index order;
4. with ``hard_attention: true``, each layer with heads left, last first, switched to top-``top_k``
   attention per query (:mod:`compbench.surgery.hard_attention`).

A candidate is kept removed only if the dev metric stays at or above the unpruned model's dev
metric minus ``epsilon`` (0: AxFormer's accuracy mode; the bound is against the unpruned model,
so drops never accumulate past it); for a metric that is better lower (a transcription task's word
error rate) at or below the unpruned model's plus ``epsilon``, the allowed rise in error; and,
unless ``loss_rise`` is null, the dev cross-entropy of the model's task head stays at or below the
unpruned model's plus ``loss_rise``. The second rule is
compbench's: accuracy on a dev split of a thousand examples moves in steps of 0.1 points, so a
greedy search over ~100 candidates accepts many small real losses that dev noise hides (on the
fine-tuned minilm-l6 the metric alone kept dev accuracy while test accuracy fell 2.5 points and
the dev loss rose from 0.39 to 0.61); the loss sees every example's confidence and catches them.
The dev split is the context's evaluator and its dev batches; the test split is never used. At
most ``max_evaluations`` candidates are evaluated; the search stops there and says so. Every
candidate tried is in the manifest with its dev metric (and dev loss) and the decision.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, always_needs_task, register
from compbench.compression.context import Batch, CompressionContext, examples_in, has_task_head, task_loss
from compbench.errors import InvalidInputError
from compbench.eval_mode import evaluating
from compbench.metrics import Metric, metric_of
from compbench.surgery.hard_attention import set_hard_attention
from compbench.surgery.layers import keep_layers
from compbench.surgery.units import (
    attention_module,
    heads_in_layer,
    keep_heads,
    keep_neurons,
    make_attention_modular,
)

LOSS_BATCH_SIZE = 32

ORDER = ("layers (last first)", "blocks (last layer first; ffn, then attention)",
         "heads (last layer first)", "hard attention (last layer first)")


def dev_loss(model: nn.Module, batches: list[Batch]) -> float:
    """Mean cross-entropy of the model's task head over the dev batches, in eval mode."""
    total = 0.0
    with evaluating(model), torch.no_grad():
        for batch in batches:
            total += float(task_loss(model, batch)) * batch.size
    return total / examples_in(batches)


class _Search:
    """The model being pruned, the original index of each layer left, and every candidate tried."""

    def __init__(self, model: nn.Module, evaluate, metric: Metric, bound: float, loss, loss_ceiling: float | None,
                 max_evaluations: int, progress):
        self.model, self.evaluate, self.metric, self.bound = model, evaluate, metric, bound
        self.loss, self.loss_ceiling = loss, loss_ceiling
        self.max_evaluations, self.progress = max_evaluations, progress
        self.layers = list(range(len(ModelAdapter(model).layers())))  # original indices of the layers left
        self.heads = [list(range(heads_in_layer(ModelAdapter(model), i))) for i in self.layers]  # original heads
        self.tried: list[dict] = []
        self.stopped = False

    def position(self, original_layer: int) -> int:
        return self.layers.index(original_layer)

    def attempt(self, candidate: dict, change) -> bool:
        """Apply ``change(adapter)`` to a copy; keep the copy if the dev metric (and dev loss) hold.
        The loss is computed only for a candidate whose metric holds."""
        if len(self.tried) >= self.max_evaluations:
            self.stopped = True
            return False
        trial = copy.deepcopy(self.model)
        change(ModelAdapter(trial))
        outcome = {"dev": float(self.evaluate(trial))}
        accepted = not self.metric.better(self.bound, outcome["dev"])  # at the bound or better
        if accepted and self.loss_ceiling is not None:
            outcome["dev_loss"] = self.loss(trial)
            accepted = outcome["dev_loss"] <= self.loss_ceiling
        self.tried.append({**candidate, **outcome, "accepted": accepted})
        if self.progress is not None:
            loss = f" loss {outcome['dev_loss']:.4f}" if "dev_loss" in outcome else ""
            self.progress(f"accuracy_driven {len(self.tried)}/{self.max_evaluations}: {candidate} "
                          f"dev {outcome['dev']:.4f}{loss} {'removed' if accepted else 'kept'}",
                          len(self.tried) / self.max_evaluations)
        if accepted:
            self.model = trial
        return accepted


def prune_by_accuracy(model, amount, options: dict, context: CompressionContext):
    started = time.perf_counter()
    data = context.require_data("accuracy_driven")
    if context.evaluate is None:
        raise InvalidInputError("accuracy_driven needs a dev evaluator (built with --task)")
    if options["epsilon"] < 0 or options["max_evaluations"] < 1 or options["top_k"] < 1 or \
            (options["loss_rise"] is not None and options["loss_rise"] < 0):
        raise InvalidInputError("accuracy_driven: epsilon and loss_rise must be >= 0, max_evaluations and "
                                "top_k >= 1")
    if options["loss_rise"] is not None and not has_task_head(model, data):
        raise InvalidInputError(f"accuracy_driven: the dev-loss rule needs a head for {data.task}'s labels "
                                "(a fine-tuned model); pass loss_rise: null to decide by the dev metric alone")
    adapter = ModelAdapter(model)
    if options["hard_attention"] and adapter.config.model_type == "wavlm":
        set_hard_attention(model, attention_module(adapter, 0), options["top_k"])  # the one clear error
    for layer in range(len(adapter.layers())):
        make_attention_modular(adapter, layer)
    dense_dev = float(context.evaluate(model))
    loss_batches = [b.to(context.device) for b in data.batches("dev", LOSS_BATCH_SIZE, context.seed)] \
        if options["loss_rise"] is not None else []
    dense_loss = dev_loss(model, loss_batches) if loss_batches else None
    metric = metric_of(context.metric)
    bound = dense_dev - options["epsilon"] if metric.higher_is_better else dense_dev + options["epsilon"]
    search = _Search(model, context.evaluate, metric, bound,
                     lambda m: dev_loss(m, loss_batches),
                     None if dense_loss is None else dense_loss + options["loss_rise"],
                     options["max_evaluations"], context.progress)

    for original in reversed(list(search.layers)):
        if len(search.layers) == 1:
            break  # the model keeps at least one layer
        kept = [i for i in search.layers if i != original]
        if search.attempt({"stage": "layer", "layer": original},
                          lambda a, kept=kept: keep_layers(a, [search.position(i) for i in kept])):
            index = search.position(original)
            search.layers.pop(index)
            search.heads.pop(index)
    for original in reversed(list(search.layers)):
        search.attempt({"stage": "block", "layer": original, "block": "ffn"},
                       lambda a, o=original: keep_neurons(a, search.position(o), []))
        if search.attempt({"stage": "block", "layer": original, "block": "attention"},
                          lambda a, o=original: keep_heads(a, search.position(o), [])):
            search.heads[search.position(original)] = []
    for original in reversed(list(search.layers)):
        for head in list(search.heads[search.position(original)]):
            left = search.heads[search.position(original)]
            if len(left) == 1:
                break  # removing the last head is the attention block's candidate, already tried
            others = [p for p, h in enumerate(left) if h != head]
            if search.attempt({"stage": "head", "layer": original, "head": head},
                              lambda a, o=original, others=others: keep_heads(a, search.position(o), others)):
                left.remove(head)
    hard = []
    if options["hard_attention"]:
        for original in reversed(list(search.layers)):
            if not search.heads[search.position(original)]:
                continue
            if search.attempt({"stage": "hard_attention", "layer": original, "top_k": options["top_k"]},
                              lambda a, o=original: set_hard_attention(
                                  a.model, attention_module(a, search.position(o)), options["top_k"])):
                hard.append(original)

    pruned = search.model
    final = ModelAdapter(pruned)
    accepted = [c for c in search.tried if c["accepted"]]
    return pruned, {
        "order": list(ORDER[:4 if options["hard_attention"] else 3]), "epsilon": options["epsilon"],
        "dev_metric": metric.name, "dev_dense": dense_dev, "dev_bound": search.bound,
        "dev_final": accepted[-1]["dev"] if accepted else dense_dev,
        "loss_rise": options["loss_rise"], "dev_loss_dense": dense_loss, "dev_loss_ceiling": search.loss_ceiling,
        "dev_loss_final": accepted[-1].get("dev_loss") if accepted else dense_loss,
        "evaluations": len(search.tried), "max_evaluations": options["max_evaluations"],
        "stopped_at_max_evaluations": search.stopped,
        "layers_kept": search.layers, "heads_kept": search.heads,
        "dropped_layers": [i for i in range(len(adapter.layers())) if i not in search.layers],
        "heads_after": [heads_in_layer(final, i) for i in range(len(search.layers))],
        "neurons_after": [final.ffn(i)[0].out_features for i in range(len(search.layers))],
        "hard_attention_layers": hard, "candidates": search.tried,
        "removed": len(accepted), "unit": "candidates removed", "seconds": round(time.perf_counter() - started, 2),
    }


register(Compressor(
    name="accuracy_driven", compress=prune_by_accuracy, takes_amount=False, uses_context=True,
    needs_task=always_needs_task,
    description="remove layers, blocks and heads a fine-tuned model does not need while its dev metric holds "
                "(AxFormer reconstruction; needs --task)",
    options={
        "epsilon": Option(float, 0.0, "largest dev-metric drop allowed against the unpruned model (0: no drop); "
                                      "for an error rate, the largest rise"),
        "loss_rise": Option((float, type(None)), 0.0,
                            "largest dev cross-entropy rise (nats) allowed against the unpruned model, checked "
                            "after the metric (null: the metric alone decides; needs the task's head)"),
        "max_evaluations": Option(int, 100, "at most this many candidates evaluated on the dev split"),
        "hard_attention": Option(bool, False, "then try top-k attention per layer by the same rule"),
        "top_k": Option(int, 8, "keys each query attends to under hard attention"),
    }))
