"""Running sweeps: resumable, exactly once per job, failures recorded, the same on Ray as locally."""

import contextlib
import errno
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import QUICK_SWEEP, QUICK_SWEEP_GROUP, needs_minilm, without_progress
from sample_records import append_many, make_record
from tiny_models import build_tiny

from compbench.cli.main import main
from compbench.errors import CorruptResultsError, InvalidInputError
from compbench.report.landscape import landscape_frame, load_landscape
from compbench.store import append_records, failures_path, read_failures, read_records, write_text_atomically
from compbench.sweep import execute as sweep_execute
from compbench.sweep import run as sweep_run
from compbench.sweep.plan import plan_jobs
from compbench.sweep.run import SweepEvents, SweepOptions, run_sweep
from compbench.sweep.schema import load_sweep
from compbench.timing.stats import paired_ratio_ci

REPO = Path(__file__).resolve().parents[1]
QUICK = QUICK_SWEEP


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    for name in ("bert", "hubert", "wavlm"):
        build_tiny(name).save_pretrained(root / name)
    return root


def tiny_sweep(path: Path, tiny_dirs: Path, **changes) -> Path:
    data = {"version": 1, "name": "tiny",
            "models": [str(tiny_dirs / "bert"), {"model": str(tiny_dirs / "hubert"), "weights": "random"}],
            "sizes": {"seconds": [0.25], "tokens": [8]},
            "compressors": {"head_pruning": {"amounts": [0.25, 0.5]}, "layer_drop": {"amounts": [0.5]}},
            "pipelines": [["ffn_pruning=0.5", "layer_drop=0.5"]],
            "measure": {"latency": False, "memory": False}, **changes}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_records(results: Path, records: list[dict]) -> None:
    write_text_atomically(results, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def records_per_job(results: Path) -> Counter:
    return Counter(r["job"] for r in read_records(results))


def cost_of(results: Path) -> dict:
    return {(r["job"], json.dumps(r["compression"])): (r["params"], r["params_nonzero"], r["macs"], r["macs_effective"])
            for r in read_records(results)}


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def test_quick_sweep_records_every_job_once(quick_results):
    results, report, seconds = quick_results
    jobs = plan_jobs(load_sweep(QUICK))
    assert not report.failed and len(report.outcomes) == len(jobs) == 10
    counts = records_per_job(results)
    assert counts == {job.key: max(1, len(job.variants)) for job in jobs}  # dense: 1; variant jobs: one per variant
    records = read_records(results)
    assert len(records) == 18 and {r["sweep"] for r in records} == {"quick"}
    assert all(r["job_seconds"] > 0 and "latency_ms" not in r and "memory" not in r for r in records)
    heads = [r for r in records if r["model"] == "distilhubert" and r["compression"]
             and r["compression"][0]["name"] == "head_pruning" and len(r["compression"]) == 1]
    assert [r["manifest"][0]["removed"] for r in heads] == [6, 12, 18]  # 24 heads
    dense_macs = {r["model"]: r["macs"] for r in records if r["compression"] is None}  # counted in the dense jobs
    for record in (r for r in records if r["compression"]):
        assert record["predicted_speedup"] == dense_macs[record["model"]] / record["macs"] > 1
    print(f"quick sweep: {seconds:.1f} s")


@QUICK_SWEEP_GROUP
def test_a_rerun_runs_nothing_and_leaves_the_file_byte_identical(quick_results, tmp_path):
    results = tmp_path / "quick.jsonl"
    shutil.copy(quick_results[0], results)
    before = results.read_bytes()
    report = run_sweep(QUICK, SweepOptions(out=results))
    assert report.outcomes == [] and all(p.state == "done" for p in report.planned)
    assert results.read_bytes() == before
    assert not failures_path(results).exists()


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def _sweep_quietly(argv: list[str]) -> None:
    """In a forked process: ``compbench`` run with ``argv``, what it prints dropped."""
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process ends with it)
    main(argv)


@QUICK_SWEEP_GROUP
def test_kill_9_at_a_random_moment_then_resume(quick_results, tmp_path):
    results = tmp_path / "quick.jsonl"
    # `compbench sweep` in a forked process (a new interpreter would import torch and compbench again: 8 s)
    sweep = multiprocessing.get_context("fork").Process(target=_sweep_quietly,
                                                        args=(["sweep", str(QUICK), "--out", str(results)],))
    sweep.start()
    rng = random.Random()
    # the records of the first timing group (minilm-l6's 9 of 18) are written at once: the kill comes at a random
    # moment of the second group, seconds before the end
    kill_after = rng.randint(1, 9)
    deadline = time.time() + 240
    while not (results.exists() and results.read_text().count("\n") >= kill_after) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.3))  # anywhere in the next job: loading, compressing, counting or writing
    assert sweep.is_alive(), "the sweep ended before it could be killed"
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.join()
    interrupted = records_per_job(results)  # readable: no partial line
    assert sum(interrupted.values()) == 9  # the first group whole, nothing of the second
    assert main(["sweep", str(QUICK), "--out", str(results)]) == 0
    assert records_per_job(results) == records_per_job(quick_results[0])  # every job exactly once
    assert cost_of(results) == cost_of(quick_results[0])  # params and MACs as an uninterrupted run's


def test_an_interrupt_keeps_the_finished_jobs_and_a_rerun_completes(tiny_dirs, tmp_path):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs)
    results = tmp_path / "r.jsonl"

    class StopAfterTwo(SweepEvents):
        finished = 0

        def job_finished(self, planned, outcome):
            self.finished += 1
            if self.finished == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, SweepOptions(out=results), StopAfterTwo())
    assert len(records_per_job(results)) == 4  # the first model's group (dense, two compressors, a pipeline), whole
    report = run_sweep(sweep, SweepOptions(out=results))
    assert len(report.outcomes) == len(report.planned) - 4
    assert set(records_per_job(results).values()) <= {1, 2} and len(records_per_job(results)) == len(report.planned)


def test_a_failing_job_is_recorded_and_the_others_complete(tiny_dirs, tmp_path, capsys):
    # WavLM keeps its relative position bias in layer 0: dropping the bottom layers fails at run time
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs,
                       models=[{"model": str(tiny_dirs / "wavlm"), "weights": "random"}, "no-such-org/no-such-model"],
                       compressors={"layer_drop": {"amounts": [0.5], "options": {"which": "bottom"}},
                                    "head_pruning": {"amounts": [0.5]}}, pipelines=[])
    results = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep), "--out", str(results)]) == 1
    out, err = capsys.readouterr()
    assert "2 jobs ran, 2 failed" in out and "--retry-failed" in err
    failures = read_failures(results)
    assert sorted(f["label"] for f in failures) == [
        f"{tiny_dirs / 'wavlm'} 0.25s layer_drop=0.5",
        "no-such-org/no-such-model (unresolved): layer_drop=0.5, head_pruning=0.5 and dense"]
    assert any("WavLM's first layer" in f["error"] for f in failures)
    assert any("no-such-org/no-such-model" in f["error"] for f in failures)
    assert all("cores" in f["machine"] and f["traceback"] for f in failures)  # where it failed, and how
    assert len(read_records(results)) == 2  # the dense job and head pruning of the WavLM model
    # a rerun skips the failed jobs; --retry-failed runs them again (one entry per job, replaced)
    assert main(["sweep", str(sweep), "--out", str(results)]) == 0
    assert "2 failed earlier" in capsys.readouterr().out
    assert main(["sweep", str(sweep), "--out", str(results), "--retry-failed"]) == 1
    assert len(read_failures(results)) == 2 and len(read_records(results)) == 2


def test_retry_failed_removes_the_failure_once_the_job_succeeds(tiny_dirs, tmp_path, monkeypatch):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs)
    results = tmp_path / "r.jsonl"
    real_run_group = sweep_execute.run_group
    jobs = plan_jobs(load_sweep(sweep))
    flaky, group = jobs[1].key, [job.key for job in jobs[:4]]  # a variant job of the first model's timing group
    runs = []

    def failing_once(group_jobs, context, progress=None):
        runs.append([job.key for job in group_jobs])
        if flaky in {job.key for job in group_jobs}:
            raise RuntimeError("the machine ran out of memory")
        return real_run_group(group_jobs, context, progress)

    monkeypatch.setattr(sweep_execute, "run_group", failing_once)
    report = run_sweep(sweep, SweepOptions(out=results))
    assert runs[:5] == [group] + [[key] for key in group]  # the failed group again, a job at a time
    assert [o.key for o in report.failed] == [flaky]  # the others of its group have their records
    assert read_failures(results)[0]["error"] == "RuntimeError: the machine ran out of memory"
    monkeypatch.setattr(sweep_execute, "run_group", real_run_group)
    assert run_sweep(sweep, SweepOptions(out=results)).outcomes == []  # failed jobs wait for --retry-failed
    report = run_sweep(sweep, SweepOptions(out=results, retry_failed=True))
    assert [o.key for o in report.outcomes] == [flaky] and not report.failed
    assert read_failures(results) == [] and set(group) <= set(records_per_job(results))


def test_fail_fast_stops_at_the_first_failure(tiny_dirs, tmp_path):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=["no-such-org/no-such-model", str(tiny_dirs / "bert")])
    results = tmp_path / "r.jsonl"
    report = run_sweep(sweep, SweepOptions(out=results, fail_fast=True))
    assert report.stopped_early and len(report.outcomes) == 1 and not results.exists()


def test_force_runs_every_job_again_and_replaces_its_records(tiny_dirs, tmp_path):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs)
    results = tmp_path / "r.jsonl"
    run_sweep(sweep, SweepOptions(out=results))
    first = read_records(results)
    report = run_sweep(sweep, SweepOptions(out=results, force=True))
    again = read_records(results)
    assert len(report.outcomes) == len(report.planned) and len(again) == len(first)
    assert records_per_job(results) == Counter(r["job"] for r in first)
    assert {r["run_id"] for r in again}.isdisjoint(r["run_id"] for r in first)


def test_bad_input_is_refused_before_any_job_runs(tiny_dirs, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"version": 1, "name": "bad", "models": ["distilhubert"],
                                   "compressors": {"head_pruning": {"amounts": [1.5]}}}))
    results = tmp_path / "r.jsonl"
    assert main(["sweep", str(bad), "--out", str(results)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"compbench: error: {bad}: compressors.head_pruning.amounts[0]:")
    results.write_text("not json\n")
    assert main(["sweep", str(tiny_sweep(tmp_path / "s.yaml", tiny_dirs)), "--out", str(results)]) == 2
    assert "not valid JSON" in capsys.readouterr().err and results.read_text() == "not json\n"
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", "/proc/compbench.jsonl"]) == 2
    assert "cannot write results to /proc/compbench.jsonl" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "x.jsonl"), "--address", "a:1"]) == 2
    assert "--address" in capsys.readouterr().err
    with_task = tiny_sweep(tmp_path / "t.yaml", tiny_dirs, task="rt-polarity")
    assert main(["sweep", str(with_task), "--out", str(tmp_path / "x.jsonl"), "--data-root", str(tmp_path / "no")]) == 2
    assert "data root" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "r.jsonl", "s.yaml", "t.yaml"]


def test_dry_run_lists_jobs_and_writes_nothing(tiny_dirs, tmp_path, capsys):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs)
    results = tmp_path / "r.jsonl"
    assert main(["sweep", str(sweep), "--out", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    jobs = plan_jobs(load_sweep(sweep))
    assert all(job.key in out for job in jobs)
    assert f"{len(jobs)} jobs: 0 done, 0 failed, {len(jobs)} pending; {len(jobs)} would run in 2 timing groups, " \
           "about" in out  # one per model
    assert not results.exists()
    run_sweep(sweep, SweepOptions(out=results))
    assert main(["sweep", str(sweep), "--out", str(results), "--dry-run"]) == 0
    assert f"{len(jobs)} jobs: {len(jobs)} done, 0 failed, 0 pending; 0 would run" in capsys.readouterr().out


def test_a_long_plan_lists_every_job_on_its_own_line(tmp_path, capsys):
    from compbench.cli.sweep import TABLE_ROWS

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"version": 1, "name": "long",
                                     "models": [{"model": "minilm-l6", "weights": "random"}],
                                     "sizes": {"tokens": list(range(1, TABLE_ROWS + 12))},
                                     "measure": {"latency": False, "memory": False}}))
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "r.jsonl"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    jobs = plan_jobs(load_sweep(sweep))
    assert len(jobs) == TABLE_ROWS + 11 and lines[1] == "#  job  state  runs  estimate"
    assert [line.split("  ")[:2] for line in lines[2:2 + len(jobs)]] == [[str(i), job.key] for i, job in
                                                                         enumerate(jobs, start=1)]
    assert lines[2 + len(jobs)].startswith(f"{len(jobs)} jobs: 0 done, 0 failed, {len(jobs)} pending")


def test_a_models_dense_and_variant_jobs_are_timed_in_one_group_of_lock_step_rounds(tiny_dirs, tmp_path):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=[str(tiny_dirs / "bert")], pipelines=[["layer_drop=0.5"]],
                       compressors={"head_pruning": {"amounts": [0.25, 0.5]}},
                       measure={"threads": 1, "budget": 60, "max_runs": 6, "memory": False})  # 6 rounds exactly
    results = tmp_path / "r.jsonl"
    report = run_sweep(sweep, SweepOptions(out=results))
    assert len(report.groups) == 1 and len(report.outcomes) == 3  # three jobs, one run
    dense, quarter, half, dropped = read_records(results)
    assert dense["compression"] is None and "speedup" not in dense
    assert len({r["job"] for r in (dense, quarter, dropped)}) == 3 and quarter["job"] == half["job"]
    for variant in (quarter, half, dropped):
        baseline = variant["baseline_latency_ms"]
        assert baseline["samples"] == dense["latency_ms"]["samples"]  # the dense job's own timing, the same rounds
        assert variant["latency_ms"]["runs"] == baseline["runs"] == 6
        assert variant["speedup"] == pytest.approx(baseline["median"] / variant["latency_ms"]["median"])
        assert variant["timing"]["interleaved_with"] == 4 and variant["threads"] == 1
        assert variant["speedup_ci95"] == list(paired_ratio_ci(baseline["samples"], variant["latency_ms"]["samples"]))
    assert dense["run_id"] == quarter["run_id"] == half["run_id"] == dropped["run_id"]
    assert dense["job_seconds"] == dropped["job_seconds"]  # the group's run, not a share of it


def test_a_resumed_group_runs_only_its_missing_jobs_and_writes_them_in_one_write(tiny_dirs, tmp_path, monkeypatch):
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=[str(tiny_dirs / "bert")],
                       measure={"threads": 1, "budget": 60, "max_runs": 6, "memory": False})
    results = tmp_path / "r.jsonl"
    writes = []
    real_append = sweep_run.append_records
    monkeypatch.setattr(sweep_run, "append_records",
                        lambda path, records, replace_jobs=(): (writes.append({r["job"] for r in records}),
                                                                real_append(path, records, replace_jobs))[1])
    first = run_sweep(sweep, SweepOptions(out=results))
    assert writes == [{p.job.key for p in first.planned}]  # the whole group, dense and three variant jobs, at once
    before = read_records(results)
    layer_drop = next(p.job.key for p in first.planned if p.job.variants_label() == "layer_drop=0.5")
    write_records(results, [r for r in before if r["job"] != layer_drop])  # as if its records were lost
    again = run_sweep(sweep, SweepOptions(out=results))
    assert [p.job.key for p in again.to_run] == [layer_drop] and writes[1:] == [{layer_drop}]
    after = read_records(results)
    assert [r for r in after if r["job"] != layer_drop] == [r for r in before if r["job"] != layer_drop]
    rerun = next(r for r in after if r["job"] == layer_drop)
    assert rerun["run_id"] not in {r["run_id"] for r in before}  # timed again, beside the dense model
    assert rerun["baseline_latency_ms"]["runs"] == rerun["latency_ms"]["runs"] == 6


def test_two_processes_appending_to_one_file_lose_no_line(tmp_path):
    path = tmp_path / "r.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=append_many, args=(str(path), w, 40)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    run_ids = [r["run_id"] for r in read_records(path)]
    assert len(run_ids) == 80 and set(run_ids) == {f"{w}-{i}" for w in range(2) for i in range(40)}


def test_an_interrupted_append_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    append_records(path, [make_record(run_id="a")])
    before = path.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        append_records(path, [make_record(run_id="b")])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.jsonl.lock", "r.jsonl"]  # no temporary file left
    with pytest.raises(CorruptResultsError):
        append_records(tmp_path / "bad.jsonl", [{"schema_version": 1}])


class FillsTheDisk:
    """A file whose disk fills up after ``room`` characters: it writes those, then fails as a full disk does."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, text: str) -> int:
        self.handle.write(text[:self.room])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_a_disk_that_fills_up_mid_append_is_one_error_and_the_file_is_as_it_was(tmp_path, monkeypatch, capsys):
    from sample_records import make_record as record

    results = tmp_path / "r.jsonl"
    append_records(results, [record(run_id="first")])
    before = results.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FillsTheDisk(real_fdopen(fd, *a, **k), room=100))
    code = main(["measure", "--model", "minilm-l6", "--tokens", "8", "--no-latency", "--out", str(results)])
    monkeypatch.undo()
    err = without_progress(capsys.readouterr().err)  # what measure printed as it measured, then the error
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"compbench: error: cannot write {results}: No space left on device")
    assert results.read_bytes() == before  # the half-written copy never replaced it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.jsonl.lock", "r.jsonl"]  # nor was it left beside it


CLUSTER_TOKEN = "the-clusters-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    """One real Ray head for the session's Ray tests (they carry QUICK_SWEEP_GROUP, so one test process starts
    it), with token authentication on, as current Ray has it by default on a cluster: its address. It started
    in 8 to 11 s here, each time. One CPU: the jobs run one after another on one worker, which imports torch and
    compbench once (each further worker costs another 8-10 s of a core: a second CPU cost the suite 22 s of
    CPU and showed nothing more; placement on several nodes has its own test)."""
    pytest.importorskip("ray", reason="Ray is an extra: pip install 'compbench[ray]'")
    bin_dir = Path(sys.executable).parent
    port = free_port()
    ports = [f"--{name}={free_port()}" for name in ("node-manager-port", "object-manager-port", "metrics-export-port",
                                                   "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                   "runtime-env-agent-port")]
    cluster = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": CLUSTER_TOKEN}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's sockets need a short path
    head = subprocess.Popen([str(bin_dir / "ray"), "start", "--head", f"--port={port}", "--num-cpus=1", "--block",
                             "--include-dashboard=false", "--include-log-monitor=false", "--disable-usage-stats",
                             "--node-ip-address=127.0.0.1",
                             f"--temp-dir={temp}", *ports],
                            env=cluster, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:  # its control service listens: it checks every connection's token from then on
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.time() < deadline, "the Ray head did not start"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # the head drains and stops every process it started
        head.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def ray_worker_setup(deaths: str):
    """A Ray worker's setup (made by a function so that Ray sends its code to the workers, which cannot import
    this file): a timing group one of whose job labels contains a name listed in ``deaths``/plan.json
    (``{name: times}``) kills its worker (SIGKILL, as the OOM killer or a user would) the first ``times`` times
    it starts, leaving ``<first job's key>.<attempt>`` there; a group that lives measures the GEMM peak on small
    matrices, as conftest's _small_gemm_peak in this process. A worker dies before it imports torch and
    compbench's measurement (8 s of a core), as a group that had not got far."""
    def setup():
        import json
        import os
        import signal
        from pathlib import Path

        from compbench.sweep import ray_executor  # no torch: the job's own imports come with its first run

        run, folder = ray_executor.execute, Path(deaths)

        def execute(jobs, context):
            plan = json.loads((folder / "plan.json").read_text()) if (folder / "plan.json").exists() else {}
            died = len(list(folder.glob(f"{jobs[0].key}.*")))
            labels = " ".join(job.label() for job in jobs)
            if any(name in labels and died < times for name, times in plan.items()):
                (folder / f"{jobs[0].key}.{died}").touch()
                os.kill(os.getpid(), signal.SIGKILL)
            import functools

            from compbench.measure import latency
            from compbench.timing.peak import measure_gemm_peak

            latency.measure_gemm_peak = functools.partial(measure_gemm_peak, sizes=(256,), repeats=2)
            return run(jobs, context)

        ray_executor.execute = execute
    return setup


@contextlib.contextmanager
def connected(ray_head, deaths: str):
    """This test process connected to :func:`ray_head` with the cluster's token, as a driver on a cluster's
    node is, its workers set up by :func:`ray_worker_setup`; the sweeps run with ``--executor ray`` reuse the
    connection."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state  # how Ray's own tests switch

    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=CLUSTER_TOKEN)
    reset_auth_token_state()  # Ray read the mode when it was imported
    ray.init(address=ray_head, log_to_driver=False, logging_level="ERROR",
             runtime_env={"worker_process_setup_hook": ray_worker_setup(deaths)})
    try:
        yield ray
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_auth_token_state()


@pytest.fixture(scope="module")
def ray_sweeps(tiny_dirs, ray_head, tmp_path_factory):
    """The module's two Ray sweeps run by this process, in one connection, so that the second gets the workers
    the first started (each new Ray worker imports torch and compbench: 8-10 s of a core; a connection per test
    cost the suite ~30 s of its two cores). (1) A small timed sweep with a task, then run again; (2) a sweep
    whose workers die in the middle of timing groups: the hubert group's the first time only, the bert group's
    every time.
    {"same": (sweep, data root, results, report, rerun report), "killed": (sweep, deaths folder, results,
    report)}, the connection closed."""
    from test_task_quality import AUDIO_TASK, write_tones

    root = tmp_path_factory.mktemp("ray-sweeps")
    deaths = root / "deaths"
    deaths.mkdir()
    write_tones(root / "data" / "tones")
    (root / "tones.yaml").write_text(yaml.safe_dump(AUDIO_TASK))
    hubert = {"model": str(tiny_dirs / "hubert"), "weights": "random"}
    same = tiny_sweep(root / "same.yaml", tiny_dirs, models=[hubert],
                      task=str(root / "tones.yaml"), compressors={"head_pruning": {"amounts": [0.5]}},
                      pipelines=[["ffn_pruning=0.5", "layer_drop=0.5"]],
                      measure={"threads": 1, "budget": 60, "max_runs": 6, "memory": False})
    killed = tiny_sweep(root / "killed.yaml", tiny_dirs, models=[hubert, str(tiny_dirs / "bert")],
                        compressors={"head_pruning": {"amounts": [0.5]}},
                        pipelines=[], measure={"latency": False, "memory": False, "threads": 1})
    data_root = str(root / "data")
    with connected(ray_head, str(deaths)):
        on_ray = SweepOptions(out=root / "same.jsonl", executor="ray", data_root=data_root)
        runs = {"same": (same, data_root, on_ray.out, run_sweep(same, on_ray), run_sweep(same, on_ray))}
        (deaths / "plan.json").write_text(json.dumps({"/hubert": 1, "/bert": 2}))
        runs["killed"] = (killed, deaths, root / "killed.jsonl",
                          run_sweep(killed, SweepOptions(out=root / "killed.jsonl", executor="ray")))
    return runs


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def test_ray_executor_gives_the_same_jobs_params_macs_and_quality_as_the_local_one(ray_sweeps, tmp_path):
    """A small timed sweep with a task, run locally and on Ray: the same job keys, params and MACs, the same
    quality, timed as asked; a restarted driver resumes (nothing left to run)."""
    sweep, data_root, on_ray, report, again = ray_sweeps["same"]
    local = tmp_path / "local.jsonl"
    for ran in (report, run_sweep(sweep, SweepOptions(out=local, data_root=data_root))):
        assert not ran.failed and len(ran.outcomes) == 3
    assert records_per_job(on_ray) == records_per_job(local)
    assert cost_of(on_ray) == cost_of(local)
    for here, remote in zip(read_records(local), read_records(on_ray), strict=True):
        assert (remote["job"], remote["params"], remote["macs"]) == (here["job"], here["params"], here["macs"])
        assert remote["quality"]["value"] == here["quality"]["value"]
        assert remote["latency_ms"]["runs"] == 6 and remote["threads"] == 1
    assert all(r["speedup_ci95"] is not None and "fidelity" in r for r in read_records(on_ray)[1:])
    assert again.outcomes == []  # a restarted driver resumes: nothing left to run


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def test_a_ray_worker_killed_during_a_group_runs_it_again_once_then_its_jobs_are_recorded_failed(ray_sweeps):
    """Workers of a real Ray cluster killed (SIGKILL) in the middle of a timing group: the hubert group's worker
    dies the first time only, the bert group's every time. The first is run again and its jobs recorded once;
    the second is run twice, then its jobs are written as failed; the sweep completes."""
    sweep, deaths, results, report = ray_sweeps["killed"]
    jobs = plan_jobs(load_sweep(sweep))
    hubert, bert = jobs[:2], jobs[2:]  # each model's dense job and head_pruning job
    assert len(report.outcomes) == 4 and [o.key for o in report.failed] == [job.key for job in bert]
    assert sorted(path.name for path in deaths.iterdir()) == sorted([f"{hubert[0].key}.0", f"{bert[0].key}.0",
                                                                     f"{bert[0].key}.1", "plan.json"])
    assert records_per_job(results) == Counter({job.key: 1 for job in hubert})  # no record twice
    failures = read_failures(results)
    assert [f["job"] for f in failures] == [job.key for job in bert]
    assert all("died, also when it ran again" in f["error"] for f in failures)
    again = run_sweep(sweep, SweepOptions(out=results))  # a rerun skips all: done, and failed earlier
    assert again.outcomes == [] and sum(records_per_job(results).values()) == 2


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def test_the_driver_of_a_ray_sweep_killed_then_run_again_resumes(tiny_dirs, ray_head, tmp_path):
    """The driver (``compbench sweep --executor ray --address``, its own process) killed with SIGKILL once the
    first group's records are written: the file holds whole groups, and a new driver runs only what is missing,
    every job once."""
    hubert = {"model": str(tiny_dirs / "hubert"), "weights": "random"}
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=[hubert, str(tiny_dirs / "bert")],
                       compressors={"head_pruning": {"amounts": [0.5]}, "layer_drop": {"amounts": [0.5]},
                                    "ffn_pruning": {"amounts": [0.5]}, "low_rank": {"amounts": [0.5]}},
                       # the head has one CPU, so the jobs run one after another on one Ray worker (a second would
                       # import torch and compbench too: 8-10 s of a core)
                       pipelines=[], measure={"latency": False, "memory": False, "threads": 1})
    jobs = plan_jobs(load_sweep(sweep))
    results = tmp_path / "r.jsonl"
    driver = subprocess.Popen([sys.executable, "-m", "compbench.cli.main", "sweep", str(sweep), "--out", str(results),
                               "--executor", "ray", "--address", ray_head],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                              env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": CLUSTER_TOKEN})
    deadline = time.time() + 240
    while not (results.exists() and results.read_text().count("\n") >= 1) and time.time() < deadline:
        assert driver.poll() is None, "the driver ended before it could be killed"
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    expected = Counter({job.key: max(1, len(job.variants)) for job in jobs})  # dense: 1; a variant job: 1 each
    written = records_per_job(results)
    assert set(written) == {job.key for job in jobs[:5]}  # the first model's group, whole: dense and 4 variant jobs
    assert all(written[key] == expected[key] for key in written)  # and every job of it whole
    # the new driver resumes from the file as any rerun does (run here without Ray: its workers would import
    # compbench again, 8 s each, to show what test_ray_executor_gives_the_same... already shows)
    report = run_sweep(sweep, SweepOptions(out=results))
    assert not report.failed and len(report.outcomes) == len(jobs) - len(written)  # only what was missing
    assert records_per_job(results) == expected


def _fine_tune_until_killed(job, cache: str, data_root: str, started: str) -> None:
    """In a forked process: the sweep's fine-tune of ``job``, saying when a fifth of its steps are done."""
    def progress(message, fraction):
        if fraction > 0.2:
            Path(started).touch()

    sweep_execute.ensure_finetuned(job, Path(cache), data_root, progress)


def test_a_fine_tune_killed_mid_epoch_leaves_no_checkpoint_and_the_rerun_trains_again(tones, tmp_path):
    task_file, data_root, tiny = tones
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "version": 1, "name": "ft", "sizes": {"seconds": [0.25]}, "measure": {"latency": False, "memory": False},
        "models": [{"model": tiny, "weights": "random", "finetune": task_file,
                    "finetune_options": {"epochs": 6, "batch_size": 2, "learning_rate": 1e-3, "precision": "fp32"}}]}))
    [job] = plan_jobs(load_sweep(sweep))
    cache, started = tmp_path / "cache", tmp_path / "started"
    child = multiprocessing.get_context("fork").Process(  # forked: no new interpreter to import torch again
        target=_fine_tune_until_killed, args=(job, str(cache), data_root, str(started)))
    child.start()
    deadline = time.time() + 120
    while not started.exists() and child.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    assert child.is_alive(), "the fine-tune ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)  # in the middle of an epoch
    child.join()
    key = sweep_execute.finetune_key(job.model.describe())
    assert sorted(p.name for p in (cache / "finetune").iterdir()) == [f".{key}.lock"]  # no checkpoint, not a part
    out, finetuned = sweep_execute.ensure_finetuned(job, cache, data_root)
    assert not finetuned["cached"] and finetuned["best_epoch"] >= 1 and out == cache / "finetune" / key
    assert sweep_execute.ensure_finetuned(job, cache, data_root)[1]["cached"]  # complete now: found, not trained


@needs_minilm
def test_a_model_fine_tuned_by_the_sweep_is_cached_by_its_key(text_task, tmp_path):
    task_file, data_root = text_task
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "version": 1, "name": "ft", "sizes": {"tokens": [16]}, "measure": {"latency": False, "memory": False},
        "models": [{"model": "minilm-l6", "finetune": task_file,
                    "finetune_options": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-4}}],
        "compressors": {"layer_drop": {"amounts": [0.5]}}}))
    results, cache = tmp_path / "r.jsonl", tmp_path / "cache"
    report = run_sweep(sweep, SweepOptions(out=results, data_root=data_root, cache_dir=cache))
    assert not report.failed
    dense, dropped = read_records(results)
    assert dense["model"] == dropped["model"] == "minilm-l6" and dense["weights"] == "pretrained"
    key = dense["finetune"]["key"]
    assert dense["checkpoint"] == str((cache / "finetune" / key).resolve())
    assert dense["finetune"] == dropped["finetune"] and not dense["finetune"]["cached"]  # trained once, for the group
    assert dense["finetune"]["task"] == "toy-text" and dense["finetune"]["train_seconds"] > 0
    assert dense["quality"]["task"] == "toy-text" and "fidelity" in dropped and "quality" in dropped
    report = run_sweep(sweep, SweepOptions(out=results, data_root=data_root, cache_dir=cache, force=True))
    assert {r["finetune"]["cached"] for r in read_records(results)} == {True}  # the cache is reused
    jobs = plan_jobs(load_sweep(sweep))
    assert [j.label() for j in jobs] == ["minilm-l6+finetune:" + task_file + " 16tok dense",
                                         "minilm-l6+finetune:" + task_file + " 16tok layer_drop=0.5"]


NODE_A, NODE_B = "a" * 56, "b" * 56  # Ray node ids are 28 bytes in hex


class FakeRay:
    """Two nodes; tasks finish in submission order. Records what each submission asked for."""

    def __init__(self):
        self.submitted, self.in_flight, self.running_timed = [], [], {}
        self.most_timed_per_node = Counter()

    def nodes(self):
        return [{"NodeID": NODE_A, "Alive": True, "Resources": {"CPU": 4.0}},
                {"NodeID": NODE_B, "Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
                {"NodeID": "c" * 56, "Alive": False, "Resources": {"CPU": 64.0}}]

    def remote(self, **_):
        fake = self

        class Task:
            def __init__(self, options=None):
                self.options_ = options or {}

            def options(self, **options):
                return Task(options)

            def remote(self, jobs, context, version, threads):
                ref = object()
                node = getattr(self.options_.get("scheduling_strategy"), "node_id", None)
                if node:
                    assert node not in fake.running_timed.values(), "two timing groups on one node"
                    fake.running_timed[ref] = node
                fake.submitted.append((jobs, self.options_, threads))
                fake.in_flight.append((ref, jobs))
                return ref
        return lambda function: Task()

    def wait(self, refs, num_returns):
        first = next(ref for ref, _ in self.in_flight if ref in refs)
        return [first], []

    def get(self, ref):
        from compbench.sweep.execute import JobOutcome

        jobs = next(j for r, j in self.in_flight if r is ref)
        self.in_flight = [(r, j) for r, j in self.in_flight if r is not ref]
        self.running_timed.pop(ref, None)
        return [JobOutcome(job.key, [], 0.1) for job in jobs]

    def cancel(self, ref, force):
        pass


def test_ray_placement_gives_each_timing_group_a_whole_node_and_packs_the_rest(tiny_dirs, tmp_path, monkeypatch):
    from compbench.sweep import ray_executor
    from compbench.sweep.execute import JobContext
    from compbench.sweep.run import plan_sweep

    fake = FakeRay()
    monkeypatch.setattr(ray_executor, "_init_ray", lambda address: (fake, False))
    timed = plan_sweep(tiny_sweep(tmp_path / "t.yaml", tiny_dirs, measure={"budget": 0.1}),
                       SweepOptions(out=tmp_path / "t.jsonl")).groups_to_run
    costs = plan_sweep(tiny_sweep(tmp_path / "c.yaml", tiny_dirs, measure={"latency": False, "threads": 2}),
                       SweepOptions(out=tmp_path / "c.jsonl")).groups_to_run
    finished = []
    ray_executor.RayExecutor().run(timed + costs, JobContext(), lambda group: None,
                                   lambda group, outcomes: finished.append((group, outcomes)) and False)
    assert len(finished) == len(timed) + len(costs) == 4 and not fake.in_flight
    assert all([o.key for o in outcomes] == [p.job.key for p in group.to_run] for group, outcomes in finished)
    node_cpus = {NODE_A: 4, NODE_B: 8}
    for jobs, options, threads in fake.submitted:
        if all(job.timed for job in jobs):  # a whole node: all its CPUs, pinned there (never soft), threads to match
            strategy = options["scheduling_strategy"]
            assert strategy.soft is False and options["num_cpus"] == node_cpus[strategy.node_id] == threads
        else:  # packed by num_cpus = the sweep's threads, anywhere
            assert options == {"num_cpus": 2} and threads == 2 and not any(job.timed for job in jobs)
    assert {o["scheduling_strategy"].node_id for j, o, _ in fake.submitted if j[0].timed} == {NODE_A, NODE_B}


def test_the_progress_bar_shows_jobs_done_failed_and_left_with_an_eta(tiny_dirs, tmp_path):
    from io import StringIO

    from rich.console import Console

    from compbench.cli.sweep import _ProgressEvents

    buffer = StringIO()
    events = _ProgressEvents(Console(file=buffer, force_terminal=True, width=200))
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=[str(tiny_dirs / "bert"), "no-such-org/no-such-model"])
    run_sweep(sweep, SweepOptions(out=tmp_path / "r.jsonl"), events)
    events.close()
    screen = buffer.getvalue()
    assert "0 done · 0 failed · 5 left" in screen and "ETA" in screen
    assert "4 done · 1 failed · 0 left" in screen
    assert "[5/5] FAILED no-such-org/no-such-model (unresolved)" in screen


@QUICK_SWEEP_GROUP
@pytest.mark.slow
def test_a_cluster_that_refuses_the_drivers_token_is_one_clear_error_and_nothing_written(tiny_dirs, ray_head,
                                                                                        tmp_path, capsys,
                                                                                        monkeypatch):
    """The session's head checks tokens; a driver that sends none, or another, is refused."""
    from ray._private.authentication_test_utils import reset_auth_token_state  # how Ray's own tests switch

    port = ray_head.rpartition(":")[2]
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, models=[str(tiny_dirs / "bert")], pipelines=[],
                       compressors={})
    for name in [name for name in os.environ if name.startswith("RAY_AUTH")]:
        monkeypatch.delenv(name)
    for env, sends in (({}, "no token (RAY_AUTH_MODE is not token)"),
                       ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "another-token"}, "a token it does not accept")):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_auth_token_state()  # Ray reads the mode once; a new driver process would read it afresh
        results = tmp_path / "r.jsonl"
        code = main(["sweep", str(sweep), "--out", str(results), "--executor", "ray",
                     "--address", f"127.0.0.1:{port}"])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("compbench: error:")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
        assert errors[0].startswith(f"compbench: error: the Ray cluster at 127.0.0.1:{port} uses token "
                                    f"authentication and refused this driver, which sends {sends}: run the sweep")
        assert "RAY_AUTH_MODE=token" in errors[0] and "~/.ray/auth_token" in errors[0]
        assert not results.exists() and not failures_path(results).exists()
    monkeypatch.undo()
    reset_auth_token_state()


def test_a_sweep_baseline_times_each_other_model_of_its_modality_beside_it_and_labels_reach_the_records(tiny_dirs,
                                                                                                        tmp_path):
    teacher, student, text = str(tiny_dirs / "hubert"), str(tiny_dirs / "wavlm"), str(tiny_dirs / "bert")
    timed = {"threads": 1, "budget": 60, "max_runs": 6, "memory": False}
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, pipelines=[], compressors={"layer_drop": {"amounts": [0.5]}},
                       models=[{"model": teacher, "weights": "random", "label": "the teacher"},
                               {"model": student, "weights": "random", "label": "the student"}, text],
                       baseline=teacher, measure=timed)
    jobs = plan_jobs(load_sweep(sweep))
    assert [(job.model.model, job.kind, job.baseline is not None) for job in jobs] == [
        (teacher, "dense", False), (teacher, "variant", False), (student, "dense", True), (student, "variant", False),
        (text, "dense", False), (text, "variant", False)]  # text is not of the baseline's modality
    unlabelled = plan_jobs(load_sweep(tiny_sweep(tmp_path / "u.yaml", tiny_dirs, pipelines=[],
                                                 compressors={"layer_drop": {"amounts": [0.5]}},
                                                 models=[{"model": teacher, "weights": "random"},
                                                         {"model": student, "weights": "random"}, text],
                                                 measure=timed)))
    assert [job.key for job in jobs if job.baseline is None] == [  # labels are no setting; only compared jobs move
        job.key for job in unlabelled if job.model.model != student or job.kind != "dense"]
    results = tmp_path / "r.jsonl"
    run_sweep(sweep, SweepOptions(out=results))
    records = read_records(results)
    assert [(r["model"], r.get("label")) for r in records] == [
        (teacher, "the teacher"), (teacher, "the teacher"), (student, "the student"), (student, "the student"),
        (text, None), (text, None)]  # the baseline's record once, from its own job
    compared = records[2]
    # the student's dense job is timed beside the teacher alone (the teacher is not compressed for it); its variant
    # in its own group, beside the student
    assert compared["baseline"] == teacher and compared["timing"]["interleaved_with"] == 2
    assert compared["speedup"] == compared["baseline_latency_ms"]["median"] / compared["latency_ms"]["median"]
    assert "baseline" not in records[3] and records[3]["run_id"] != compared["run_id"]
    frame = landscape_frame(load_landscape([results]))
    assert set(frame.loc[frame["variant"] == student, "group"]) == set(frame.loc[frame["model"] == "the teacher",
                                                                                 "group"])


def test_a_model_not_to_compress_gets_its_dense_job_only(tiny_dirs, tmp_path):
    teacher, student = str(tiny_dirs / "hubert"), str(tiny_dirs / "wavlm")
    sweep = tiny_sweep(tmp_path / "s.yaml", tiny_dirs, baseline=teacher, compressors={"distill": {}},
                       pipelines=[],
                       models=[{"model": teacher, "weights": "random", "compress": False},
                               {"model": student, "weights": "random", "compress": False}])
    jobs = plan_jobs(load_sweep(sweep))  # distill needs a task, and nothing here is compressed: no error either
    assert [(job.model.model, job.kind, job.baseline is not None) for job in jobs] == [
        (teacher, "dense", False), (student, "dense", True)]


@pytest.mark.parametrize(("changes", "message"), [
    ({"baseline": "nobody"}, "baseline 'nobody' is not one of the sweep's models"),
    ({"models": [{"model": "distilhubert", "label": "x"}, {"model": "hubert-base", "label": "x"}]},
     "label 'x' is given to two models"),
    ({"models": [{"model": "distilhubert", "label": " "}]}, "label is empty")])
def test_a_bad_baseline_or_label_in_a_sweep_file_is_refused(tiny_dirs, tmp_path, changes, message):
    with pytest.raises(InvalidInputError, match=message):
        load_sweep(tiny_sweep(tmp_path / "s.yaml", tiny_dirs, **changes))
