"""Sweeps: a declarative grid of models, sizes, compressors and pipelines, run as resumable jobs."""

from compbench.sweep.plan import Job, plan_jobs
from compbench.sweep.run import SweepOptions, SweepReport, plan_sweep, run_sweep
from compbench.sweep.schema import Sweep, load_sweep

__all__ = ["Job", "Sweep", "SweepOptions", "SweepReport", "load_sweep", "plan_jobs", "plan_sweep", "run_sweep"]
