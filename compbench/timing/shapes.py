"""Which widths this machine's kernels run fastest at, and whether a factorised Linear is faster than the one it
replaces: short matrix-product benchmarks, measured once per machine, device, dtype and thread count and cached.

:func:`preferred_alignment` times an FFN-like pair of products (rows x hidden into a width, and back) at widths
that are odd multiples of each candidate alignment (479, 743 and 1021 for 1; 488, 744, 1016 for 8; ... 384, 640,
896 for 128), interleaved in rounds, and picks the smallest alignment whose widths run within
:data:`WITHIN` of the fastest candidate's rate per MAC. :func:`factorised_is_faster` times one Linear's product
against the two thin products of its rank-``r`` factorisation. Both are keyed by the machine (CPU model and
cores, GPU), the device, the dtype, the threads and the torch version, and kept in the cache folder
(``$COMPBENCH_CACHE_DIR/shapes``), so a machine measures each once; what they measured goes into the manifest
of the compressor that asked.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from compbench.atomic import write_text_atomically
from compbench.cache import cache_dir
from compbench.environment import cpu_cores, cpu_model, gpu_name
from compbench.timing.device import synchronize

BENCHMARK_VERSION = 1
# odd multiples of each candidate (so a width aligned to 2a is not counted for a), spanning FFN-like widths
CANDIDATE_WIDTHS = {1: (479, 743, 1021), 8: (488, 744, 1016), 16: (496, 752, 1008), 32: (480, 736, 992),
                    64: (448, 704, 960), 128: (384, 640, 896)}
ROWS, HIDDEN = 256, 768  # tokens x hidden of the products timed (a Transformer's FFN at a typical size)
ROUNDS, CALLS = 15, 3
WITHIN = 0.97  # an alignment is as fast as the fastest when its widths reach this fraction of its rate

# the device the models being compressed will run on (as the process's threads are the threads they will run with):
# set by whoever measures them, read by the benchmarks here; the CPU where nobody says
_TARGET_DEVICE: ContextVar[str] = ContextVar("compbench_target_device", default="cpu")


@contextmanager
def target_device(device: torch.device | str) -> Iterator[None]:
    """Within it, shape benchmarks asked for no device time ``device`` (``measure`` builds its variants in it)."""
    token = _TARGET_DEVICE.set(str(device))
    try:
        yield
    finally:
        _TARGET_DEVICE.reset(token)


@dataclass(frozen=True)
class ShapeAlignment:
    """The alignment chosen (in elements of a product's width) and what it was chosen from."""

    elements: int
    rates_gmacs: dict[int, float]  # candidate alignment -> the median rate of its widths, GMAC/s
    device: str
    dtype: str
    threads: int

    def describe(self) -> dict:
        return {"elements": self.elements, "rates_gmacs": {str(k): round(v, 2) for k, v in self.rates_gmacs.items()},
                "device": self.device, "dtype": self.dtype, "threads": self.threads, "benchmark": BENCHMARK_VERSION}


def _machine_key(kind: str, device: torch.device, dtype: torch.dtype, threads: int, extra: dict) -> str:
    payload = {"kind": kind, "version": BENCHMARK_VERSION, "cpu": cpu_model(), "cores": cpu_cores(),
               "gpu": gpu_name() if device.type == "cuda" else None, "device": device.type, "dtype": str(dtype),
               "threads": threads, "torch": torch.__version__, **extra}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _cached(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not measured yet (or a file cut short): measured again


def _store(path: Path, value: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(value, sort_keys=True))  # whole or not there
    except OSError:  # ResultsWriteError too
        pass  # a read-only cache: measured again next time, nothing else changes


def _timed(calls: list, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for call in calls:
        call()
    synchronize(device)
    return time.perf_counter() - start


def _ffn_pair(width: int, device: torch.device, dtype: torch.dtype):
    x = torch.randn(ROWS, HIDDEN, device=device, dtype=dtype)
    up = torch.randn(width, HIDDEN, device=device, dtype=dtype)
    down = torch.randn(HIDDEN, width, device=device, dtype=dtype)
    return lambda: torch.nn.functional.linear(torch.nn.functional.linear(x, up), down)


def measure_alignment(device: torch.device, dtype: torch.dtype) -> ShapeAlignment:
    """Time :data:`CANDIDATE_WIDTHS` now, on this process's threads (no cache)."""
    pairs = {(a, w): _ffn_pair(w, device, dtype) for a, widths in CANDIDATE_WIDTHS.items() for w in widths}
    seconds: dict[int, list[float]] = {a: [] for a in CANDIDATE_WIDTHS}
    with torch.inference_mode():
        for pair in pairs.values():  # warm-up
            pair()
        for _ in range(ROUNDS):
            spent = dict.fromkeys(CANDIDATE_WIDTHS, 0.0)
            for (a, _), pair in pairs.items():
                spent[a] += _timed([pair] * CALLS, device)
            for a in CANDIDATE_WIDTHS:
                seconds[a].append(spent[a])
    rates = {}
    for a, widths in CANDIDATE_WIDTHS.items():
        macs = CALLS * sum(2 * ROWS * HIDDEN * w for w in widths)
        rates[a] = macs / sorted(seconds[a])[ROUNDS // 2] / 1e9
    return ShapeAlignment(chosen_alignment(rates), rates, device.type, str(dtype).removeprefix("torch."),
                          torch.get_num_threads())


def chosen_alignment(rates: dict[int, float]) -> int:
    """The smallest alignment whose widths run within :data:`WITHIN` of the fastest alignment's rate."""
    fastest = max(rates.values())
    return min(a for a, rate in rates.items() if rate >= WITHIN * fastest)


def preferred_alignment(device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                        cache: str | Path | None = None) -> ShapeAlignment:
    """The alignment this machine's kernels run fastest at on ``device`` (default: the :func:`target_device`) in
    ``dtype`` with this process's threads: measured the first time (a few seconds), then read from the cache."""
    device = torch.device(device or _TARGET_DEVICE.get())
    threads = torch.get_num_threads()
    path = cache_dir(cache) / "shapes" / f"alignment-{_machine_key('alignment', device, dtype, threads, {})}.json"
    stored = _cached(path)
    if stored is not None:
        return ShapeAlignment(stored["elements"], {int(k): v for k, v in stored["rates_gmacs"].items()},
                              stored["device"], stored["dtype"], stored["threads"])
    measured = measure_alignment(device, dtype)
    _store(path, asdict(measured))
    return measured


@dataclass(frozen=True)
class FactorisationTiming:
    """One Linear's product against its factorisation's two, timed in the same rounds (median seconds)."""

    dense_s: float
    factorised_s: float

    @property
    def faster(self) -> bool:
        return self.factorised_s < self.dense_s


def factorisation_timing(in_features: int, out_features: int, rank: int, device: torch.device | str | None = None,
                         dtype: torch.dtype = torch.float32, rows: int = ROWS,
                         cache: str | Path | None = None) -> FactorisationTiming:
    """How long ``rows`` inputs take through a Linear ``in_features -> out_features`` and through its rank-``rank``
    factorisation (``in -> rank -> out``), on this machine (``device`` default: the :func:`target_device`):
    measured the first time for the shape, then cached."""
    device = torch.device(device or _TARGET_DEVICE.get())
    shape = {"in": in_features, "out": out_features, "rank": rank, "rows": rows}
    key = _machine_key("factorisation", device, dtype, torch.get_num_threads(), shape)
    path = cache_dir(cache) / "shapes" / f"factorisation-{key}.json"
    stored = _cached(path)
    if stored is not None:
        return FactorisationTiming(stored["dense_s"], stored["factorised_s"])
    x = torch.randn(rows, in_features, device=device, dtype=dtype)
    weight = torch.randn(out_features, in_features, device=device, dtype=dtype)
    first = torch.randn(rank, in_features, device=device, dtype=dtype)
    second = torch.randn(out_features, rank, device=device, dtype=dtype)
    dense = lambda: torch.nn.functional.linear(x, weight)
    factorised = lambda: torch.nn.functional.linear(torch.nn.functional.linear(x, first), second)
    times: dict[str, list[float]] = {"dense": [], "factorised": []}
    with torch.inference_mode():
        dense(), factorised()
        for _ in range(ROUNDS):
            times["dense"].append(_timed([dense] * CALLS, device) / CALLS)
            times["factorised"].append(_timed([factorised] * CALLS, device) / CALLS)
    timing = FactorisationTiming(*(sorted(times[k])[ROUNDS // 2] for k in ("dense", "factorised")))
    _store(path, asdict(timing))
    return timing
