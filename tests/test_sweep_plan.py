"""Sweep files are checked strictly before any job runs; jobs and their keys are stable."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from tiny_models import build_tiny

from compbench.errors import InvalidInputError
from compbench.sweep import plan
from compbench.sweep.plan import estimate_seconds, job_key, plan_jobs
from compbench.sweep.schema import load_sweep

REPO = Path(__file__).resolve().parents[1]

QUICK_AS_WRITTEN = """\
version: 1
name: quick
models:
  - {model: minilm-l6, weights: random}
  - {model: distilhubert}
sizes: {seconds: [2], tokens: [64]}
compressors:
  head_pruning: {amounts: [0.25, 0.5, 0.75]}
  ffn_pruning: {amounts: [0.25, 0.5, 0.75], options: {importance: magnitude}}
  layer_drop: {amounts: [0.5]}
pipelines:
  - [head_pruning=0.5, ffn_pruning=0.5]
measure: {latency: false, memory: false}
"""


def write(tmp_path, text_or_data, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(text_or_data if isinstance(text_or_data, str) else yaml.safe_dump(text_or_data, sort_keys=False))
    return path


def test_the_issue_sweep_file_is_accepted_as_written(tmp_path):
    sweep = load_sweep(write(tmp_path, QUICK_AS_WRITTEN))
    assert sweep.name == "quick" and [m.model for m in sweep.models] == ["minilm-l6", "distilhubert"]
    assert sweep.models[0].weights == "random" and sweep.models[1].weights is None
    assert (sweep.sizes.seconds, sweep.sizes.tokens) == ((2.0,), (64,))
    assert [(c.name, c.amounts) for c in sweep.compressors] == [
        ("head_pruning", (0.25, 0.5, 0.75)), ("ffn_pruning", (0.25, 0.5, 0.75)), ("layer_drop", (0.5,))]
    assert sweep.compressors[1].options["importance"] == "magnitude"
    assert [(s.name, s.amount) for s in sweep.pipelines[0]] == [("head_pruning", 0.5), ("ffn_pruning", 0.5)]
    assert not sweep.measure.latency and not sweep.measure.memory
    # the copy shipped in sweeps/ is the same sweep
    shipped = load_sweep(REPO / "sweeps" / "quick.yaml")
    assert [j.key for j in plan_jobs(shipped)] == [j.key for j in plan_jobs(sweep)]


def test_the_reference_sweep_file_is_valid():
    sweep = load_sweep(REPO / "sweeps" / "default.yaml")
    jobs = plan_jobs(sweep)
    assert len(jobs) == 2 * (1 + 7 + 2)  # per model: dense, seven compressors, two pipelines
    assert {j.task for j in jobs if j.model.model == "minilm-l6"} == {"rt-polarity"}
    assert {j.task for j in jobs if j.model.model == "hubert-base"} == {None}  # the text task is not for speech


def test_the_speech_sweep_file_trains_its_model_and_reports_its_task():
    [entry] = load_sweep(REPO / "sweeps" / "speech.yaml").models
    jobs = plan_jobs(load_sweep(REPO / "sweeps" / "speech.yaml"))
    assert len(jobs) == 1 + 7 and sum(len(j.variants) for j in jobs) == 3 + 3 + 3 + 1 + 1 + 1 + 1
    assert {j.task for j in jobs} == {"fsdd-digits"}
    assert [len(j.variants) for j in jobs if "conv_pruning" in j.label()] == [3]  # the front end too
    described = entry.describe()
    assert described["weights"] == "random" and described["finetune"]["task"] == "fsdd-digits"
    assert described["finetune"]["options"]["pooling"] == "weighted"  # the speech recipe's defaults


def test_the_speech_recognition_sweep_measures_the_recogniser_its_comments_train(tmp_path, monkeypatch):
    """``asr/`` is what the file's two finetune commands write, relative to where the sweep runs."""
    from tiny_models import build_tiny

    build_tiny("hubert").save_pretrained(tmp_path / "asr")
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(REPO / "sweeps" / "speech-asr.yaml")
    jobs = plan_jobs(sweep)
    assert {j.task for j in jobs} == {"fsdd-sequences"} and sweep.measure.task_limit == 100
    assert len(jobs) == 1 + 7 and sum(len(j.variants) for j in jobs) == 3 + 3 + 1 + 3 + 3 + 1 + 1
    assert "conv_pruning" in {step.name for job in jobs for steps in job.variants for step in steps}
    assert sweep.sizes.seconds == (2.0,) and sweep.measure.threads == 2


def test_the_published_speech_sweep_times_each_published_model_against_hubert_base_and_compresses_only_it():
    sweep = load_sweep(REPO / "sweeps" / "published-speech.yaml")
    jobs = plan_jobs(sweep)
    assert sweep.baseline.model == "hubert-base" and sweep.sizes.seconds == (10.0,) and sweep.measure.threads == 2
    assert [job.model.model for job in jobs if job.baseline is not None] == [
        "distilhubert", "fithubert", "armhubert", "armhubert-s", "starhubert", "lighthubert-small", "lighthubert-base"]
    assert {job.model.model for job in jobs if job.variants} == {"hubert-base"} and len(jobs) == 1 + 7 + 7
    fithubert = next(job for job in jobs if job.model.model == "fithubert")
    alone = replace(fithubert, baseline=None)  # the same job without hubert-base in its rounds
    assert estimate_seconds(fithubert, 2) > estimate_seconds(alone, 2)


def test_quick_sweep_jobs():
    jobs = plan_jobs(load_sweep(REPO / "sweeps" / "quick.yaml"))
    assert [j.label() for j in jobs[:5]] == [
        "minilm-l6 64tok dense", "minilm-l6 64tok head_pruning 0.25/0.5/0.75",
        "minilm-l6 64tok ffn_pruning 0.25/0.5/0.75", "minilm-l6 64tok layer_drop=0.5",
        "minilm-l6 64tok head_pruning=0.5,ffn_pruning=0.5"]
    assert len(jobs) == 10 and sum(len(j.variants) for j in jobs) == 2 * 8
    assert len({j.key for j in jobs}) == 10
    assert all(len(j.key) == 16 for j in jobs)


BASE = {"version": 1, "name": "t", "models": ["distilhubert"], "sizes": {"seconds": [1]},
        "compressors": {"head_pruning": {"amounts": [0.5]}}, "measure": {"latency": False}}


def keys(tmp_path, **changes):
    data = {**BASE, **changes}
    return [j.key for j in plan_jobs(load_sweep(write(tmp_path, data)))]


def test_keys_are_stable_and_follow_what_the_job_measures(tmp_path, monkeypatch):
    first = keys(tmp_path)
    assert keys(tmp_path) == first
    assert keys(tmp_path, name="renamed") == first  # the sweep's name is not part of a job
    assert keys(tmp_path, measure={"latency": False, "threads": 1}) != first
    assert keys(tmp_path, sizes={"seconds": [2]}) != first
    changed = keys(tmp_path, compressors={"head_pruning": {"amounts": [0.5], "options": {"scope": "layer"}}})
    assert changed[0] == first[0] and changed[1] != first[1]  # the dense job is unchanged
    untimed = BASE["measure"]
    assert keys(tmp_path, measure={**untimed, "runtimes": ["eager"]}) == first  # eager alone, the default: same keys
    timed = keys(tmp_path, measure={"runtimes": ["eager"]})
    assert keys(tmp_path, measure={"runtimes": ["eager", "onnxruntime"]}) != timed
    monkeypatch.setattr(plan, "__version__", "99.0")
    assert keys(tmp_path) != first
    monkeypatch.undo()
    monkeypatch.setattr(plan, "SCHEMA_VERSION", 99)
    assert keys(tmp_path) != first


def test_job_key_is_a_hash_of_the_canonical_configuration():
    assert job_key({"a": 1, "b": [1, 2]}) == job_key({"b": [1, 2], "a": 1})
    assert job_key({"a": 1}) != job_key({"a": 2})


def test_the_sweep_task_applies_to_models_of_its_modality(tmp_path):
    jobs = plan_jobs(load_sweep(write(tmp_path, {**BASE, "models": ["distilhubert", "minilm-l6"],
                                                 "task": "rt-polarity", "sizes": {"seconds": [1], "tokens": [8]}})))
    assert {(j.model.model, j.task) for j in jobs} == {("distilhubert", None), ("minilm-l6", "rt-polarity")}
    with pytest.raises(InvalidInputError, match=r"models\[0\]: task rt-polarity takes text; distilhubert is a speech"):
        plan_jobs(load_sweep(write(tmp_path, {**BASE, "models": [{"model": "distilhubert", "task": "rt-polarity"}]})))
    with pytest.raises(InvalidInputError, match=r"models\[0\].finetune: task rt-polarity takes text; distilhubert is"):
        load_sweep(write(tmp_path, {**BASE, "models": [{"model": "distilhubert", "finetune": "rt-polarity"}]}))
    speech = load_sweep(write(tmp_path, {**BASE, "models": [{"model": "distilhubert", "finetune": "fsdd-digits"}]}))
    described = speech.models[0].describe()
    assert described["weights"] == "random"  # a speech preset trains from its random initialisation
    assert described["finetune"]["options"]["learning_rate"] == 3e-4  # the speech recipe's defaults
    assert {j.task for j in plan_jobs(speech)} == {"fsdd-digits"}


def test_a_data_driven_compressor_needs_a_task_for_every_model(tmp_path):
    sweep = {**BASE, "models": ["distilhubert", "minilm-l6"], "task": "fsdd-digits",
             "sizes": {"seconds": [1], "tokens": [8]}, "compressors": {}, "pipelines": [["layer_drop=0.5", "distill"]]}
    with pytest.raises(InvalidInputError, match=r"models\[1\]: distill needs task data; give the model \(or the "
                                                r"sweep\) a task for text"):
        plan_jobs(load_sweep(write(tmp_path, sweep)))
    jobs = plan_jobs(load_sweep(write(tmp_path, {**sweep, "models": ["distilhubert"]})))
    assert [(j.kind, j.task) for j in jobs] == [("dense", "fsdd-digits"), ("variant", "fsdd-digits")]


def test_a_model_that_cannot_be_resolved_is_one_job_that_will_fail(tmp_path):
    jobs = plan_jobs(load_sweep(write(tmp_path, {**BASE, "models": ["distilhubert", "no-such-org/no-such-model"]})))
    unresolved = [j for j in jobs if j.kind == "unresolved"]
    assert len(jobs) == 3 and len(unresolved) == 1
    assert "no-such-org/no-such-model" in unresolved[0].problem
    assert unresolved[0].label() == "no-such-org/no-such-model (unresolved): head_pruning=0.5 and dense"


def test_a_local_directory_is_a_model(tmp_path):
    build_tiny("bert").save_pretrained(tmp_path / "tiny-bert")
    jobs = plan_jobs(load_sweep(write(tmp_path, {**BASE, "models": [str(tmp_path / "tiny-bert")],
                                                 "sizes": {"tokens": [8]}})))
    assert [j.modality for j in jobs] == ["text", "text"]
    assert jobs[0].input() == {"kind": "text", "tokens": 8, "batch": 1}


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, r"sweep.yaml: unknown key\(s\) 'colour'"),
    ({"version": 2}, r"sweep.yaml: version 2 is not supported"),
    ({"version": "1"}, r"sweep.yaml: 'version' must be an integer"),
    ({"name": "a b"}, r"sweep.yaml: 'name' must be letters"),
    ({"models": []}, r"sweep.yaml: 'models' must list at least one model"),
    ({"models": ["hubret-base"]},
     r"sweep.yaml: models\[0\].model: unknown model 'hubret-base'. Did you mean: hubert-base"),
    ({"models": [{"model": "distilhubert", "weight": "random"}]}, r"models\[0\]: unknown key\(s\) 'weight'"),
    ({"models": [{"model": "distilhubert", "weights": "real"}]}, r"models\[0\]: 'weights' must be one of"),
    ({"models": [{"model": "minilm-l6", "finetune": "rt-polarity", "weights": "random"}]},
     r"models\[0\]: 'finetune' on a text task starts from pretrained weights"),
    ({"models": [{"model": "minilm-l6", "finetune": "fsdd-digits"}]}, r"models\[0\].finetune: task fsdd-digits"),
    ({"models": ["distilhubert", "distilhubert"]}, r"models\[1\] repeats models\[0\]"),
    ({"task": "rt-polarty"}, r"sweep.yaml: task: unknown task 'rt-polarty'. Did you mean: rt-polarity"),
    ({"sizes": {"seconds": [1, -2]}}, r"sizes.seconds\[1\]: must be a finite number > 0"),
    ({"sizes": {"tokens": [8.5]}}, r"sizes.tokens\[0\] must be an integer"),
    ({"sizes": {"second": [1]}}, r"sizes: unknown key\(s\) 'second'"),
    ({"compressors": {"head_prunning": {"amounts": [0.5]}}},
     r"compressors.head_prunning: unknown compressor 'head_prunning'. Did you mean: head_pruning"),
    ({"compressors": {"head_pruning": {"amounts": [0.5, 1.5]}}},
     r"compressors.head_pruning.amounts\[1\]: head_pruning: amount must be in \[0, 1\), got 1.5"),
    ({"compressors": {"head_pruning": {"amounts": ["half"]}}}, r"compressors.head_pruning.amounts\[0\]"),
    ({"compressors": {"head_pruning": {"amounts": [0.5, 0.5]}}},
     r"compressors.head_pruning.amounts: an amount is listed"),
    ({"compressors": {"head_pruning": {}}}, r"compressors.head_pruning: missing key 'amounts'"),
    ({"compressors": {"head_pruning": {"amounts": 0.5}}}, r"compressors.head_pruning: 'amounts' must be a list"),
    ({"compressors": {"bf16": {"amounts": [0.5]}}}, r"compressors.bf16.amounts: bf16 takes no amount"),
    ({"compressors": {"head_pruning": {"amounts": [0.5], "options": {"importanc": "magnitude"}}}},
     r"compressors.head_pruning.options: head_pruning: unknown option\(s\) 'importanc'"),
    ({"compressors": {"head_pruning": {"amounts": [0.5], "options": {"scope": "everywhere"}}}},
     r"compressors.head_pruning.options: head_pruning: option 'scope' must be one of"),
    ({"pipelines": [["head_pruning=0.5", "ffn_prunin=0.5"]]}, r"pipelines\[0\]\[1\]: unknown compressor 'ffn_prunin'"),
    ({"pipelines": [["layer_drop=2"]]}, r"pipelines\[0\]\[0\]: layer_drop: amount must be in \[0, 1\)"),
    ({"pipelines": [["layer_drop=x"]]}, r"pipelines\[0\]\[0\]: amount 'x' of layer_drop is not a number"),
    ({"pipelines": [["head_pruning=0.5"]]}, r"pipelines\[0\] is the same variant as compressors.head_pruning at 0.5"),
    ({"pipelines": [[]]}, r"pipelines\[0\]: a pipeline needs at least one step"),
    ({"measure": {"latency": "no"}}, r"measure: 'latency' must be a boolean"),
    ({"measure": {"rel_ci": 2}}, r"measure.rel_ci: must be between 0 and 1"),
    ({"measure": {"device": "tpu"}}, r"measure: 'device' must be one of cpu, cuda"),
    ({"measure": {"threads": 0}}, r"measure.threads: must be >= 1"),
    ({"measure": {"max_runs": 3}}, r"measure.max_runs: must be >= 6"),
    ({"measure": {"runtimes": ["eager", "onnx-runtime"]}},
     r"measure.runtimes\[1\]: unknown runtime 'onnx-runtime'. Did you mean: onnxruntime"),
    ({"measure": {"runtimes": []}}, r"measure.runtimes: give at least one runtime"),
    ({"measure": {"runtimes": ["compile"], "latency": False}}, r"measure.runtimes: runtimes matter only for latency"),
    ({"compressors": {"ort_int8": {}}},
     r"compressors.ort_int8: ort_int8 variants run only under the runtime onnxruntime, not eager: add that runtime"),
    ({"pipelines": [["layer_drop=0.5", "int8_dynamic"]], "measure": {"runtimes": ["onnxruntime"]}},
     r"pipelines\[0\]: int8_dynamic variants run only under the runtime eager or compile, not onnxruntime"),
])
def test_bad_sweep_files_are_refused_naming_the_file_and_key(tmp_path, change, message):
    with pytest.raises(InvalidInputError, match=message):
        load_sweep(write(tmp_path, {**BASE, **change}))


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot read sweep file"):
        load_sweep(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_sweep(write(tmp_path, "a: [1"))
    with pytest.raises(InvalidInputError, match="a sweep file holds a mapping"):
        load_sweep(write(tmp_path, "- 1\n"))


def test_pipeline_string_steps_take_the_compressor_section_options(tmp_path):
    sweep = load_sweep(write(tmp_path, {**BASE, "compressors": {"head_pruning": {
        "amounts": [0.25], "options": {"scope": "layer"}}}, "pipelines": [["head_pruning=0.5", "layer_drop=0.5"],
                                                                          [{"name": "bf16"}]]}))
    assert sweep.pipelines[0][0].options["scope"] == "layer"
    assert sweep.pipelines[0][1].options == {"which": "top"}
    assert sweep.pipelines[1][0].name == "bf16" and sweep.pipelines[1][0].amount is None


def test_estimates_are_positive_and_grow_with_the_work():
    jobs = plan_jobs(load_sweep(REPO / "sweeps" / "default.yaml"))
    estimates = {j.label(): plan.estimate_seconds(j, threads=2) for j in jobs}
    assert all(seconds > 0 for seconds in estimates.values())
    assert estimates["hubert-base 10s head_pruning 0.25/0.5/0.75"] > estimates["hubert-base 10s bf16"]
    untimed = replace(jobs[-1], measure=replace(jobs[-1].measure, latency=False))
    assert plan.estimate_seconds(untimed, threads=2) < estimates[jobs[-1].label()]


@pytest.mark.parametrize(("model", "modality", "size"), [("minilm-l6", "text", 37), ("distilhubert", "speech", 2.3)])
def test_a_plans_macs_between_the_fitted_sizes_are_within_a_percent_of_a_count(model, modality, size):
    from compbench.sweep import plan

    counted = plan._counted_macs(model, modality, size)
    assert size not in plan.FIT_SIZES[modality] and counted > 0
    assert plan.dense_macs(model, modality, size, 3) == pytest.approx(3 * counted, rel=0.01)
    assert plan.dense_macs(model, modality, plan.FIT_SIZES[modality][1], 2) == 2 * plan._counted_macs(
        model, modality, plan.FIT_SIZES[modality][1])  # a fitted size is its own count


def test_a_group_too_big_for_memory_runs_as_several_runs_each_job_whole(tmp_path):
    from compbench.sweep.execute import MEMORY_SHARE, runs_of

    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"version": 1, "name": "m", "models": [{"model": "hubert-base"}],
                                     "sizes": {"seconds": [1]},
                                     "compressors": {"head_pruning": {"amounts": [0.25, 0.5, 0.75]},
                                                     "layer_drop": {"amounts": [0.5]}},
                                     "pipelines": [["head_pruning=0.5", "ffn_pruning=0.5"]]}))
    jobs = plan_jobs(load_sweep(sweep))  # dense; head_pruning at three amounts; layer_drop; the pipeline
    assert runs_of(jobs, 100, None) == [jobs]  # memory unknown: one run
    assert runs_of(jobs, 100, int(100 * 6 / MEMORY_SHARE)) == [jobs]  # room for the dense model and 5 variants
    four = runs_of(jobs, 100, int(100 * 4 / MEMORY_SHARE))  # the dense model and 3 variants a run
    assert four == [jobs[:2], jobs[2:]]  # head_pruning's three together; then layer_drop and the pipeline
    assert runs_of(jobs, 100, 1) == [jobs[:2], [jobs[2]], [jobs[3]]]  # a job is never split
