"""The compressor contract: a pure function ``(model, amount, options[, context]) -> Variant``.

A compressor never mutates its input; it returns a new model and a manifest of what it
removed or changed, per layer. Compressors are registered by name with their options
declared, so unknown options, wrong types and amounts out of range fail with one clear error.
A compressor that uses data declares it (``uses_context``) and receives the caller's
:class:`~compbench.compressors.context.CompressionContext`; ``needs_task`` says, from its
options, whether it cannot run without task data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from compbench.compressors.context import NO_CONTEXT, CompressionContext
from compbench.counting.weights import has_quantized_weights
from compbench.errors import InvalidInputError
from compbench.registry import Registry
from compbench.runtimes.base import onnx_quantization


@dataclass(frozen=True)
class Option:
    """One option a compressor accepts."""

    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None

    @property
    def type_name(self) -> str:
        """The accepted types as users write them: ``float``, ``int or null``."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join("null" if t is type(None) else t.__name__ for t in types)

    def check(self, compressor: str, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if value is None and self.default is None:
            return None
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise InvalidInputError(f"{compressor}: option {name!r} must be {self.type_name}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InvalidInputError(f"{compressor}: option {name!r} must be one of "
                                    f"{', '.join(map(str, self.choices))}; got {value!r}")
        return value


@dataclass
class Variant:
    """A compressed model and the record of what was done to it."""

    model: nn.Module
    manifest: list[dict]  # one entry per pipeline step, in order


Compress = Callable[..., tuple[nn.Module, dict]]  # (model, amount, options[, context]) -> (model, changes)


def _data_free(options: dict) -> bool:
    return False


@dataclass(frozen=True)
class Compressor:
    name: str
    compress: Compress  # receives its own deep copy of the model; returns (model, changes)
    description: str
    options: dict[str, Option] = field(default_factory=dict)
    takes_amount: bool = True
    uses_context: bool = False  # compress() takes a fourth argument, the CompressionContext
    needs_task: Callable[[dict], bool] = _data_free  # (checked options) -> True if it cannot run without a task
    curve_option: str | None = None  # an option that moves the variant along one curve, as an amount does
    input_dependent: bool = False  # its variants' work depends on the input's values: measured per example
    quantizes: bool = False  # its variants have quantized weights
    accepts_quantized: bool = False  # it works on a model with quantized weights (most need float weights)
    runtimes: tuple[str, ...] | None = None  # the only runtimes its variants run under (None: every runtime)

    def check_amount(self, amount: float | None) -> float | None:
        if not self.takes_amount:
            if amount is not None:
                raise InvalidInputError(f"{self.name} takes no amount; write it by name alone ({self.name})")
            return None
        if amount is None:
            raise InvalidInputError(f"{self.name} needs an amount in [0, 1), e.g. {self.name}=0.5")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount < 1:
            raise InvalidInputError(f"{self.name}: amount must be in [0, 1), got {amount!r}")
        return float(amount)

    def check_options(self, options: dict | None) -> dict:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise InvalidInputError(f"{self.name}: unknown option(s) {', '.join(map(repr, unknown))}; "
                                    f"known options: {known}")
        return {name: spec.check(self.name, name, options.get(name, spec.default))
                for name, spec in self.options.items()}

    def check_context(self, options: dict, context: CompressionContext) -> None:
        """The one error for a compressor that needs task data and has none (options already checked)."""
        if self.needs_task(options):
            context.require_data(self.name + _options_phrase(options))

    def __call__(self, model: nn.Module, amount: float | None = None, options: dict | None = None,
                 context: CompressionContext = NO_CONTEXT) -> Variant:
        amount = self.check_amount(amount)
        options = self.check_options(options)
        self.check_context(options, context)
        if onnx_quantization(model) is not None:
            raise InvalidInputError(f"{self.name} comes after ort_int8, which quantizes the exported ONNX model: "
                                    "ort_int8 must be the last step")
        if not self.accepts_quantized and has_quantized_weights(model):
            raise InvalidInputError(f"{self.name} needs floating-point weights and the model's are quantized: "
                                    f"apply {self.name} before the quantization step")
        arguments = (copy.deepcopy(model), amount, options) + ((context,) if self.uses_context else ())
        compressed, changes = self.compress(*arguments)
        step = {"name": self.name, "amount": amount, "options": options, **changes}
        return Variant(compressed, [step])


COMPRESSORS: Registry[Compressor] = Registry("compressor")


def register(compressor: Compressor) -> Compressor:
    return COMPRESSORS.register(compressor.name, compressor)


def excluded_runtimes(step_names: list[str], runtimes: list[str]) -> dict[str, str]:
    """Of ``runtimes``, each one a variant made by these steps cannot run under, with the step that rules it out."""
    excluded = {}
    for name in step_names:
        allowed = COMPRESSORS.get(name).runtimes
        for runtime in runtimes:
            if allowed is not None and runtime not in allowed:
                excluded.setdefault(runtime, name)
    return excluded


def runtimes_phrase(step_name: str) -> str:
    """The runtimes a restricted compressor's variants run under, as a message says them: ``eager or compile``."""
    return " or ".join(COMPRESSORS.get(step_name).runtimes)


def check_runtimes_served(step_names: list[str], runtimes: list[str]) -> None:
    """One clear error when a variant made by these steps runs under none of ``runtimes``."""
    excluded = excluded_runtimes(step_names, runtimes)
    if runtimes and len(excluded) == len(runtimes):
        step = excluded[runtimes[0]]
        raise InvalidInputError(f"{step} variants run only under the runtime {runtimes_phrase(step)}, not "
                                f"{', '.join(runtimes)}: add that runtime")


@dataclass(frozen=True)
class Step:
    """One step of a compression pipeline."""

    name: str
    amount: float | None = None
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "amount": self.amount, "options": dict(self.options)}


def _options_phrase(options: dict) -> str:
    return f" with importance: {options['importance']}" if options.get("importance") else ""


def steps_needing_task(steps: list[Step]) -> list[str]:
    """Labels of the (checked) steps that cannot run without task data."""
    return [step.name + _options_phrase(step.options) for step in steps
            if COMPRESSORS.get(step.name).needs_task(step.options)]


def check_task_given(pipelines: list[list[Step]], task: str | None) -> None:
    """Fail before any model loads when a pipeline needs task data and no task was given."""
    needing = [label for steps in pipelines for label in steps_needing_task(steps)]
    if needing and task is None:
        NO_CONTEXT.require_data(needing[0])


def check_pipeline(steps: list[Step]) -> list[Step]:
    """Validate every step (names, amounts, options) before anything runs."""
    if not steps:
        raise InvalidInputError("a compression pipeline needs at least one step")
    checked = []
    for step in steps:
        compressor = COMPRESSORS.get(step.name)  # unknown names: an error with near matches
        checked.append(Step(step.name, compressor.check_amount(step.amount),
                            compressor.check_options(step.options)))
    return checked


def apply_pipeline(model: nn.Module, steps: list[Step], context: CompressionContext = NO_CONTEXT) -> Variant:
    """Apply the steps in order; the input model is left unchanged and is every step's teacher."""
    manifest: list[dict] = []
    current = model
    context = context.with_teacher(model)
    checked = check_pipeline(steps)
    for step in checked:  # a step that needs data fails before any step runs
        COMPRESSORS.get(step.name).check_context(step.options, context)
    for step in checked:
        variant = COMPRESSORS.get(step.name)(current, step.amount, step.options, context)
        current = variant.model
        manifest.extend(variant.manifest)
    return Variant(current, manifest)
