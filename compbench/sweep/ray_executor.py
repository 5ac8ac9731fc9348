"""Running sweep timing groups as Ray tasks (``compbench sweep --executor ray``; ``pip install 'compbench[ray]'``).

A task runs one timing group (the jobs of one model at one size that will run, measured together).
Placement:
- A group that times gets a whole node to itself: the driver sends it to a node with no other
  timing group (node affinity, never soft) and asks for every CPU (and, on CUDA, a GPU) of that
  node, so neither a second timing group nor a cost-only one can run beside it.
- Cost-only and quality groups pack by ``num_cpus`` (the sweep's ``threads``, default 1), anywhere.

Records stream back to the driver as groups end; the driver alone writes the results file, so a
restarted driver resumes like a local rerun. Every node needs the same compbench version (a
worker with another version fails its jobs with that message) and, for tasks and fine-tuning,
the data root and the cache folder at the same paths (shared storage on a multi-node cluster).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace

from compbench import __version__
from compbench.errors import InvalidInputError
from compbench.sweep.execute import CachedLoader, JobContext, JobOutcome, execute
from compbench.sweep.executor import Finished, Started
from compbench.sweep.plan import Job, PlannedGroup

RETRIES_OF_A_LOST_WORKER = 1
_WORKER_LOADER: CachedLoader | None = None  # one per Ray worker process: its groups of one model load it once


def _ray_group(jobs: list[Job], context: JobContext, driver_version: str, threads: int) -> list[JobOutcome]:
    """The Ray task: run one group's jobs in a worker (imported by reference, so workers need compbench
    installed)."""
    global _WORKER_LOADER
    if __version__ != driver_version:
        message = (f"this Ray worker runs compbench {__version__}, the driver {driver_version}: "
                   "install the same version on every node")
        return [JobOutcome(job.key, None, 0.0, "VersionMismatch", message) for job in jobs]
    _WORKER_LOADER = _WORKER_LOADER or CachedLoader()
    return execute(jobs, replace(context, loader=_WORKER_LOADER, threads=threads))


@dataclass
class _Node:
    node_id: str
    cpus: int
    gpus: int


def _alive_nodes(ray) -> list[_Node]:
    nodes = [_Node(n["NodeID"], int(n["Resources"].get("CPU", 0)), int(n["Resources"].get("GPU", 0)))
             for n in ray.nodes() if n.get("Alive")]
    return [n for n in nodes if n.cpus > 0]


NO_TOKEN_MODE = "no token (RAY_AUTH_MODE is not token)"
NO_TOKEN_FOUND = ("no token (RAY_AUTH_MODE is token, but none is in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                  "~/.ray/auth_token)")
WRONG_TOKEN = "a token it does not accept"


def authentication_error(address: str, sends: str) -> InvalidInputError:
    """The one error for a cluster that refuses this driver's token (or its lack of one)."""
    return InvalidInputError(
        f"the Ray cluster at {address} uses token authentication and refused this driver, which sends {sends}: "
        "run the sweep as the nodes were started, with RAY_AUTH_MODE=token, and with the cluster's token (the "
        "head node's ~/.ray/auth_token copied to this machine, or RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)")


def _what_this_driver_sends() -> str:
    return WRONG_TOKEN if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else NO_TOKEN_MODE


@contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for a moment (native code writes there past sys.stderr)."""
    sys.stderr.flush()
    saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)


def refusal(address: str) -> str | None:
    """What this driver sends that the cluster at ``host:port`` refuses, or None where it is accepted or unknown.

    Asked before ``ray.init``, which would retry for 20 s and then say only that it could not connect.
    Unknown where nothing listens there, the address has another form (``auto``, ``ray://``: ray.init
    resolves those) or this Ray lacks what the question needs."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError:
        return None  # nothing there: ray.init says it cannot connect
    try:
        from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:
        return None
    try:
        ensure_token_if_auth_enabled(None, create_token_if_missing=False)
    except AuthenticationError:
        return NO_TOKEN_FOUND
    except Exception:
        return None
    try:
        with _stderr_silenced():  # Ray's core logs the refusal on its own line; the error below says it
            GcsClient(address=f"{host}:{port}")  # the cluster's control service checks the token
    except AuthenticationError:
        return _what_this_driver_sends()
    except Exception:  # anything else: ray.init will say what it is
        return None
    return None


def _init_ray(address: str | None):
    try:
        import ray
    except ImportError:
        raise InvalidInputError("--executor ray needs Ray: pip install 'compbench[ray]'") from None
    if ray.is_initialized():
        return ray, False
    refused = refusal(address) if address else None
    if refused:
        raise authentication_error(address, refused)
    settings = dict(logging_level=logging.ERROR, log_to_driver=False)
    refused_by_cluster = getattr(ray.exceptions, "AuthenticationError", ())  # Ray 2.52 and later
    try:
        if address:
            ray.init(address=address, **settings)
        else:
            ray.init(include_dashboard=False, **settings)
    except refused_by_cluster:
        raise authentication_error(address or "this machine", _what_this_driver_sends()) from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise InvalidInputError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {err}") from None
    return ray, True


class RayExecutor:
    """Timing groups as Ray tasks on a cluster (``address``) or on a local Ray instance started for the sweep."""

    def __init__(self, address: str | None = None):
        self.address = address

    def run(self, pending: list[PlannedGroup], context: JobContext, started: Started, finished: Finished) -> None:
        run_on_ray(pending, context, started, finished, self.address)


def run_on_ray(pending: list[PlannedGroup], context: JobContext, started: Started, finished: Finished,
               address: str | None) -> None:
    """Run ``pending`` as Ray tasks; ``finished(group, outcomes)`` writes each as it ends."""
    ray, started_here = _init_ray(address)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = _alive_nodes(ray)
        if not nodes:
            raise InvalidInputError("the Ray cluster has no node with CPUs")
        # a worker that dies during a group (killed, out of memory, its node lost) runs the group once more; a
        # group that fails in the worker returns its failures and is never run again (Ray retries only a lost worker)
        task = ray.remote(max_retries=RETRIES_OF_A_LOST_WORKER)(_ray_group)
        context = replace(context, loader=None)  # each worker keeps its own
        timing = [group for group in pending if group.timed]
        others = [group for group in pending if not group.timed]
        free_nodes = list(nodes)
        in_flight: dict = {}

        def submit(group: PlannedGroup, options: dict, threads: int, node: _Node | None) -> None:
            settings = group.measure
            if settings.device == "cuda":
                options["num_gpus"] = 1
            jobs = [p.job for p in group.to_run]
            ref = task.options(**options).remote(jobs, context, __version__, settings.threads or threads)
            in_flight[ref] = (group, node)
            started(group)

        for group in others:  # Ray queues them; they pack by num_cpus
            threads = group.measure.threads or 1
            submit(group, {"num_cpus": threads}, threads, None)

        def submit_timing() -> None:
            while timing and free_nodes:
                node, group = free_nodes.pop(0), timing.pop(0)
                strategy = NodeAffinitySchedulingStrategy(node_id=node.node_id, soft=False)
                submit(group, {"num_cpus": node.cpus, "scheduling_strategy": strategy}, node.cpus, node)

        submit_timing()
        while in_flight:
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            group, node = in_flight.pop(ref)
            outcomes = _outcomes(ray, ref, group)
            if node is not None:
                free_nodes.append(node)
            if finished(group, outcomes):
                for other in in_flight:
                    ray.cancel(other, force=True)
                return
            submit_timing()
    finally:
        if started_here:
            ray.shutdown()


def _outcomes(ray, ref, group: PlannedGroup) -> list[JobOutcome]:
    try:
        return ray.get(ref)
    except Exception as err:  # the worker died again on the retry (out of memory, a lost node): the group failed
        return [JobOutcome(p.job.key, None, 0.0, type(err).__name__,
                           f"the Ray worker running it died, also when it ran again: {err}") for p in group.to_run]
