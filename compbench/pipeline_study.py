"""The pipeline study: efficiency operators alone and chained in every order, measured in one run.

An operator is one compression pipeline (usually one step: ``head_pruning=0.5``, ``int8_dynamic``,
``early_exit``). :func:`run_pipeline_study` measures the dense model, each operator alone and every
order of all of them (n! orders; with ``subsets``, every order of every subset of two or more too)
in one :func:`compbench.measure.measure` run, so every variant is timed interleaved with the same
dense model. When an operator's variants have input-dependent cost (early exit), every pipeline is
measured example by example on the task's evaluation split, so all of them stand on the same
footing. An order that a compressor refuses by what it declares (a pruning step after int8
quantization: it needs floating-point weights) is not run; the study lists it with the reason.
Each record is tagged with ``pipeline_study``: the study's id, its operators and the order
this record applied them in. Commutativity and cumulativeness are computed from those records by
:mod:`compbench.report.pipelines`, which the CLI, the report and the notebook all call.

:func:`run_pipeline_study` is the plain public function behind ``compbench pipelines``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace

from compbench.compressors import COMPRESSORS, Step
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, ProgressCallback, measure
from compbench.record import step_label
from compbench.report.landscape import step_with_options

MAX_OPERATORS = 5  # 5! = 120 orders already


def study_orders(operators: int, subsets: bool = False) -> list[tuple[int, ...]]:
    """The orders a study measures: each operator alone, then every order of all of them (and with
    ``subsets`` every order of each subset of two or more operators), as tuples of operator indices."""
    orders = [(i,) for i in range(operators)]
    sizes = range(2, operators + 1) if subsets else ([operators] if operators > 1 else [])
    for size in sizes:
        for chosen in itertools.combinations(range(operators), size):
            orders.extend(itertools.permutations(chosen))
    return orders


def operator_labels(operators: Sequence[Sequence[Step]]) -> list[str]:
    """Each operator as written on the command line (``head_pruning=0.5``); with the options it changed
    from the defaults where that alone tells two operators apart."""
    short = [",".join(step_label(step.to_dict()) for step in steps) for steps in operators]
    if len(set(short)) == len(short):
        return short
    return [",".join(step_with_options(step.to_dict()) for step in steps) for steps in operators]


def refusal(steps: Sequence[Step]) -> str | None:
    """Why a pipeline cannot run, from what its compressors declare (None when it can): a step that
    needs floating-point weights after a step that quantizes them."""
    quantized_by = None
    for step in steps:
        compressor = COMPRESSORS.get(step.name)
        if quantized_by is not None and not compressor.accepts_quantized:
            return f"{step.name} needs floating-point weights and cannot follow {quantized_by}"
        if compressor.quantizes:
            quantized_by = step.name
    return None


def _step_key(step: dict) -> str:
    return json.dumps([step["name"], step["amount"], step["options"]], sort_keys=True)


def run_pipeline_study(model: str, task: str, operators: Sequence[Sequence[Step]], subsets: bool = False,
                       options: MeasureOptions | None = None, progress: ProgressCallback | None = None) -> list[dict]:
    """Measure ``model``, each operator alone and their orders on ``task``; the records, tagged ``pipeline_study``.

    ``options`` sets everything else of the measurement (sizes, threads, timing budget, data root);
    its models, task and pipelines are replaced."""
    if not 2 <= len(operators) <= MAX_OPERATORS:
        raise InvalidInputError(f"a pipeline study takes 2 to {MAX_OPERATORS} operators (--op); "
                                f"got {len(operators)}")
    labels = operator_labels(operators)
    if len(set(labels)) != len(labels):
        raise InvalidInputError(f"the operators must differ; got {', '.join(labels)}")
    orders, skipped = [], []
    for order in study_orders(len(operators), subsets):
        reason = refusal([step for index in order for step in operators[index]])
        if reason is not None and len(order) == 1:
            raise InvalidInputError(f"operator {labels[order[0]]} cannot run: {reason}")
        if reason is None:
            orders.append(order)
        else:
            skipped.append({"order": list(order), "reason": reason})
    pipelines = [[step for index in order for step in operators[index]] for order in orders]
    per_example = any(COMPRESSORS.get(step.name).input_dependent for steps in operators for step in steps)
    options = replace(options or MeasureOptions(), models=[model], task=task, compress=pipelines,
                      per_example=per_example)
    records = measure(options, progress)

    study = {"id": uuid.uuid4().hex[:12], "operators": labels,
             "operator_steps": [[step.to_dict() for step in steps] for steps in operators], "subsets": subsets,
             "basis": "per example" if per_example else "input size", "skipped": skipped}
    order_of = {tuple(_step_key(s.to_dict()) for s in steps): order for steps, order in zip(pipelines, orders,
                                                                                             strict=True)}
    for record in records:
        steps = record.get("compression") or []
        order: tuple[int, ...] = ()
        for start in range(len(steps) + 1):  # a loaded variant's own steps come first
            key = tuple(_step_key(step) for step in steps[start:])
            if key in order_of:
                order = order_of[key]
                break
        record["pipeline_study"] = {**study, "order": list(order)}
    return records
