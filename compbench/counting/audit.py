"""Counter audit: what fvcore and thop report for the same model and input, beside compbench.

Both run a real forward on CPU (fvcore traces with TorchScript, thop uses module hooks), so
the audit is opt-in. fvcore counts one fused multiply-add as one flop, and thop counts MACs,
so both are directly comparable to compbench's MACs.
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
from torch import nn


def _relative(value: float, reference: int) -> float:
    return (value - reference) / reference if reference else 0.0


def fvcore_macs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict:
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        analysis = FlopCountAnalysis(model, tuple(inputs.values()))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return {"macs": int(analysis.total()), "skipped_ops": dict(analysis.unsupported_ops())}


def thop_macs(model: nn.Module, inputs: dict[str, torch.Tensor]) -> dict:
    from thop import profile

    scratch = copy.deepcopy(model)  # thop adds buffers and hooks to the modules it profiles
    with torch.no_grad():
        macs, params = profile(scratch, inputs=tuple(inputs.values()), verbose=False)
    return {"macs": int(macs), "params": int(params)}


AUDITORS = {"fvcore": fvcore_macs, "thop": thop_macs}


def audit_counts(model: nn.Module, inputs: dict[str, torch.Tensor], compbench_macs: int) -> dict:
    """Each auditor's count and its relative difference from compbench's (or its error)."""
    cpu_inputs = {k: v.cpu() for k, v in inputs.items()}
    report: dict[str, dict] = {}
    for name, auditor in AUDITORS.items():
        try:
            with warnings.catch_warnings():
                # the auditors' own deprecations (torch.jit tracing, distutils) are not the user's
                warnings.simplefilter("ignore", DeprecationWarning)
                result = auditor(model, cpu_inputs)
        except Exception as err:  # an auditor failing is itself a finding, not a crash
            report[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
            continue
        result["relative_difference"] = _relative(result["macs"], compbench_macs)
        report[name] = result
    return report
