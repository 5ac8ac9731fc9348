"""torch.compile with the inductor backend.

The model is compiled for the fixed inputs it is timed on (``dynamic=False``); the first call
compiles, and its seconds are recorded and never timed. Warm-up then runs until three consecutive
calls agree within 10 % (at most ``WARMUP_CALLS``), and a last call must compile nothing new: a
model that keeps recompiling gets an error, not a latency. Every variant is a new module, so
dynamo's recompile limit (8 per code object by default, after which it silently runs eager) is
raised for the process.
"""

from __future__ import annotations

import time

import torch
import torch._dynamo
from torch import nn

from compbench.errors import InvalidInputError
from compbench.runtimes.base import (
    ComparableOutput,
    Prepared,
    Runtime,
    first_line,
    refuse_onnx_quantized,
    register,
)
from compbench.timing.device import synchronize

WARMUP_CALLS = 30
RECOMPILE_LIMIT = 4096


def _compiled_graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def prepare_compiled(model: nn.Module, inputs: dict, threads: int, device: torch.device,
                     cache_dir: str | None = None) -> Prepared:
    refuse_onnx_quantized("compile", model)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    compiled = torch.compile(ComparableOutput(model).eval(), backend="inductor", dynamic=False)
    started = time.perf_counter()
    try:
        with torch.inference_mode():
            compiled(**inputs)
            synchronize(device)
    except Exception as err:  # inductor's errors are long; the first line says what failed
        raise InvalidInputError(f"runtime compile: torch.compile failed for this model: {first_line(err)}") from None
    compile_seconds = time.perf_counter() - started
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(WARMUP_CALLS):
            start = time.perf_counter()
            compiled(**inputs)
            synchronize(device)
            times.append(time.perf_counter() - start)
            if len(times) >= 3 and max(times[-3:]) <= 1.1 * min(times[-3:]):
                break
        graphs = _compiled_graphs()
        compiled(**inputs)
        if _compiled_graphs() != graphs:
            raise InvalidInputError("runtime compile: the model recompiled after warm-up; its graph is not stable")

    def output() -> torch.Tensor:
        with torch.inference_mode():
            return compiled(**inputs).cpu()

    return Prepared(run=lambda: compiled(**inputs), output=output, info={
        "name": "compile", "version": torch.__version__, "backend": "inductor", "dynamic": False,
        "compile_seconds": round(compile_seconds, 3), "warmup_calls": len(times)})


register(Runtime(name="compile", description="torch.compile, inductor backend (compile time recorded, not timed)",
                 version=lambda: torch.__version__, prepare=prepare_compiled))
