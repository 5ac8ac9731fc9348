"""Runtimes a model is served with: eager PyTorch, torch.compile, ONNX Runtime.

A runtime turns a model and its inputs into a :class:`~compbench.runtimes.base.Prepared` model:
one call that runs a forward (for timing), the output compared with eager PyTorch before any
timing, and what the runtime is (name, version, settings) for the record.
"""

from compbench.runtimes import compiled, eager, onnx  # noqa: F401  (registers each runtime)
from compbench.runtimes.base import RUNTIMES, OutputMismatchError, Prepared, Runtime, check_outputs, comparable_output

__all__ = ["RUNTIMES", "OutputMismatchError", "Prepared", "Runtime", "check_outputs", "comparable_output"]
