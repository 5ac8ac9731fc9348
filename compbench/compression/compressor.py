"""The compressor contract: a pure function ``(model, amount, options[, context]) -> Variant``.

A compressor never mutates its input; it returns a new model and a manifest of what it
removed or changed, per layer. Compressors are registered by name with their options
declared, so unknown options, wrong types and amounts out of range fail with one clear error.
A compressor that uses data declares it (``uses_context``) and receives the caller's
:class:`~compbench.compression.context.CompressionContext`; ``needs_task`` says, from its
options, whether it cannot run without task data. The compressors themselves live in
:mod:`compbench.compressors`, one file each; importing that package registers them all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from compbench.compression.context import NO_CONTEXT, CompressionContext
from compbench.counting.weights import has_quantized_weights
from compbench.errors import InvalidInputError
from compbench.registry import Registry
from compbench.runtimes.base import onnx_quantization


def half_up(value: float) -> int:
    """Round to the nearest whole number, halves up (0.5 * 9 heads -> 5): how an amount becomes units."""
    return int(value + 0.5)


def allowed_counts(units: int, align: int) -> list[int]:
    """Counts a layer of ``units`` may keep with an alignment: the multiples of ``align`` up to it, and all of it."""
    return sorted({*range(align, units + 1, align), units})


def nearest_allowed(count: int, align: int, units: int) -> int:
    """The count of :func:`allowed_counts` nearest ``count`` (halves up)."""
    return min(allowed_counts(units, align), key=lambda allowed: (abs(allowed - count), -allowed))


@dataclass(frozen=True)
class Option:
    """One option a compressor accepts."""

    type: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None  # a number below it is refused
    words: tuple[str, ...] = ()  # a number option's words besides numbers (``auto``): its only strings

    @property
    def type_name(self) -> str:
        """The accepted types as users write them: ``float``, ``int or null``, ``int, auto or null``."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        names = [" or ".join(f"'{w}'" for w in self.words) if t is str and self.words
                 else "null" if t is type(None) else t.__name__ for t in types]
        return " or ".join(names)

    def check(self, compressor: str, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        if value is None and self.default is None:
            return None
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise InvalidInputError(f"{compressor}: option {name!r} must be {self.type_name}, got {value!r}")
        if self.words and isinstance(value, str):
            if value not in self.words:
                raise InvalidInputError(f"{compressor}: option {name!r} must be {self.type_name}, got {value!r}")
            return value
        if self.choices is not None and value not in self.choices:
            raise InvalidInputError(f"{compressor}: option {name!r} must be one of "
                                    f"{', '.join(map(str, self.choices))}; got {value!r}")
        if self.minimum is not None and value is not None and value < self.minimum:
            raise InvalidInputError(f"{compressor}: option {name!r} must be >= {self.minimum:g}, got {value!r}")
        return value


@dataclass
class Variant:
    """A compressed model and the record of what was done to it."""

    model: nn.Module
    manifest: list[dict]  # one entry per pipeline step, in order


Compress = Callable[..., tuple[nn.Module, dict]]  # (model, amount, options[, context]) -> (model, changes)


def _data_free(options: dict) -> bool:
    return False


def always_needs_task(options: dict) -> bool:
    """``needs_task`` of a compressor that learns from task data whatever its options."""
    return True


def _any_device(options: dict, device: torch.device) -> None:
    return None


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
    # (checked options, device) -> raises InvalidInputError where its variants cannot run on that device
    check_device: Callable[[dict, torch.device], None] = _any_device

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

    def task_label(self, options: dict) -> str:
        """How a message names this step when it needs task data: ``head_pruning with importance: fisher``."""
        return self.name + (f" with importance: {options['importance']}" if options.get("importance") else "")

    def check_context(self, options: dict, context: CompressionContext) -> None:
        """The one error for a compressor that needs task data and has none (options already checked)."""
        if self.needs_task(options):
            context.require_data(self.task_label(options))

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
        try:
            compressed, changes = self.compress(*arguments)
        except InvalidInputError as err:  # said by surgery or a model's adapter: which step of a pipeline failed
            if type(err) is not InvalidInputError or str(err).startswith(self.name):
                raise
            raise InvalidInputError(f"{self.name}: {err}") from err
        step = {"name": self.name, "amount": amount, "options": options, **changes}
        return Variant(compressed, [step])


COMPRESSORS: Registry[Compressor] = Registry("compressor")


def register(compressor: Compressor) -> Compressor:
    return COMPRESSORS.register(compressor.name, compressor)
