"""The landscape as a table: one row per configuration, grouped by model, input size and machine, with Pareto marks.

Built from records alone (any results file, from any machine), by plain functions that
``compbench report``, the notebook and the tests all call. Groups never mix machines: a
latency or speedup is only ever compared with others measured on the same machine and settings
(:func:`compbench.record.machine_label`). Speedups are the records' own same-run ratios;
nothing here forms a ratio across runs.

Medians measured in different runs (a sweep's jobs) also carry the machine's drift between those
runs: on a shared machine the same dense model's median moved by 30 % between jobs. So wherever
variants of different runs are ranked or drawn against each other by latency, the latency used is
``relative_latency``: the variant's median over its own dense model's in the same run (1 / speedup,
1 for the dense model), with the interval of ``speedup_ci95``.

A configuration measured more than once (reruns, sweeps that share jobs) is one row: its latest
measurement, with how many there were. Results files are read one line at a time and without their raw
timing samples (the tables and charts use the recorded medians and intervals), so 100,000 records
load and report in the time and memory ``results/store-scale/`` records.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from compbench.compressors import COMPRESSORS
from compbench.errors import InvalidInputError
from compbench.metrics import direction_note, metric_of
from compbench.models.provenance import finetune_label
from compbench.record import (
    compression_label,
    input_label,
    machine_label,
    real_time_factor,
    runtime_name,
    step_label,
)
from compbench.store import iter_records, read_failures

NOT_TIMED = "not timed"
# Pareto fronts: name -> ((column, "max" | "min"), ...). Which ones a group gets is decided by what it measured;
# "quality" is wanted as its metric says (compbench.metrics: accuracy higher, WER lower).
FRONTS = {
    "quality_macs": (("quality", "max"), ("macs", "min")),
    "quality_latency": (("quality", "max"), ("relative_latency", "min")),
    "latency_params": (("relative_latency", "min"), ("params", "min")),
    "macs_params": (("macs", "min"), ("params", "min")),
}
FRONT_LABELS = {"quality_macs": "quality/MACs", "quality_latency": "quality/latency",
                "latency_params": "latency/params", "macs_params": "MACs/params"}


@dataclass
class Landscape:
    """Records and failed jobs read from one or more results files.

    From :func:`load_landscape`, ``records`` holds the latest record of each configuration and every record of
    a pipeline study (a record another of its configuration has superseded is dropped as the files are read,
    so memory follows the configurations, not the records); ``read`` counts every record read, and
    ``measurements`` how many measured each configuration. A record read again (the same run, job and
    configuration: a file given twice, or a line appended twice) is counted once; ``repeated`` says how many
    were left out so."""

    records: list[dict]
    failures: list[dict] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    read: int = 0
    measurements: dict[tuple, int] = field(default_factory=dict)
    repeated: int = 0

    def repeated_warning(self) -> str | None:
        """What to tell the user about the records read again, if any."""
        if not self.repeated:
            return None
        return (f"{self.repeated} record{'s were' if self.repeated > 1 else ' was'} read again (the same run, job "
                f"and configuration: a file given twice, or a line appended twice) and counted once")


# every run's raw timings: the largest part of a timed record (2 of its 6 KB), read by no table or chart
RAW_SAMPLES = ("latency_ms.samples", "baseline_latency_ms.samples", "macs_per_example.samples")


def load_landscape(paths: Iterable[str | Path], labels: dict[str, str] | None = None) -> Landscape:
    """Read results files (and the failures file beside each, if any), one line at a time and without the
    records' raw samples (:data:`RAW_SAMPLES`; :func:`compbench.store.read_records` gives whole records),
    keeping what :class:`Landscape` says; ``labels`` (model -> words) relabel the records as they are read."""
    landscape = Landscape([], [], [])
    kept: list[dict] = []
    latest: dict[tuple, int] = {}  # configuration -> where its latest record is in ``kept``
    done: set = set()
    seen: set[tuple] = set()  # (run, job, configuration) of every record read
    failed: set[str] = set()
    for path in paths:
        for record in iter_records(path, without=RAW_SAMPLES):
            record = relabelled(record, labels or {})
            key = configuration_of(_row(record))
            if (record["run_id"], record.get("job"), key) in seen:
                landscape.repeated += 1
                continue
            seen.add((record["run_id"], record.get("job"), key))
            landscape.read += 1
            done.add(record.get("job"))
            landscape.measurements[key] = landscape.measurements.get(key, 0) + 1
            previous = latest.get(key)
            newer = previous is None or record["timestamp"] >= kept[previous]["timestamp"]
            if newer and previous is not None and "pipeline_study" not in kept[previous]:
                kept[previous] = record  # superseded, and no study needs it: the configuration keeps its place
            elif newer or "pipeline_study" in record:  # a new configuration, or a record a study needs
                if newer:
                    latest[key] = len(kept)
                kept.append(record)
        for failure in read_failures(path):
            if json.dumps(failure, sort_keys=True) not in failed:  # a file given twice
                failed.add(json.dumps(failure, sort_keys=True))
                landscape.failures.append(failure)
        landscape.sources.append(str(path))
    landscape.records = kept
    if not landscape.records:
        raise InvalidInputError(f"no records in {', '.join(landscape.sources)}")
    landscape.failures = [f for f in landscape.failures if f["job"] not in done]  # failed, then succeeded
    return landscape


def quality_examples(quality: dict) -> str:
    """``40 of 300 test examples`` where a quality figure saw part of its split (--task-limit), else ``""``."""
    whole = quality.get("split_examples")
    if whole is None:
        return ""
    return f"{quality['examples'][quality['split']]} of {whole} {quality['split']} examples"


ANOTHER_MODEL = "another model"  # what a chart colours a model measured against a --baseline model by


def model_identity(record: dict) -> str:
    """Which model a record's row belongs to, as the records name it (not in words: two models may have the same
    words, two trainings of one recipe): the base model of a saved variant, a sweep's fine-tune by its key."""
    base = record.get("base_model")
    if base and record.get("compression"):
        return f"{base['model']} ({base['weights']})"
    finetune = record.get("finetune")
    if finetune:
        return f"{record['model']} (finetune {finetune.get('key', finetune['task'])})"
    return f"{record['model']} ({record['weights']})"


def model_label(record: dict) -> str:
    """The model a record's row belongs to, by what it is (:func:`described`): a saved variant, or a fine-tune of
    one, is a configuration of the model its first step compressed (its ``base_model``), beside that model's own
    records (dense and in-run variants). (A model measured against a ``--baseline`` model joins the baseline's
    rows: :func:`beside_baselines`.)"""
    base = record.get("base_model")
    if base and record.get("compression"):
        return described(base)
    finetune = record.get("finetune")
    if finetune and not model_words(record):
        return f"{record['model']} fine-tuned on {finetune['task']}"
    return described(record)


def described(entry: dict) -> str:
    """A record (or its ``base_model``) by what it is: its ``label`` (``--label``, or a saved model's provenance),
    else what its ``model_source`` says it was trained from (records written before labels), else its name and
    weights: ``hubert-base (random weights)``."""
    return model_words(entry) or f"{entry['model']} ({entry['weights']} weights)"


def model_words(entry: dict) -> str | None:
    """What a record's ``label`` or ``model_source`` says the model is; None where neither says more than its name."""
    return entry.get("label") or provenance_phrase(entry.get("model_source"))


def provenance_phrase(model_source: str | None) -> str | None:
    """``compbench finetune: distilhubert from random init on fsdd-digits v2`` as ``distilhubert trained here on
    fsdd-digits``, ``compbench finetune: M (W) on T vN`` as ``M fine-tuned on T``; None for any other source."""
    prefix = "compbench finetune: "
    if not model_source or not model_source.startswith(prefix):
        return None
    start, _, task = model_source.removeprefix(prefix).rpartition(" on ")
    task = task.rsplit(" v", 1)[0]
    if start.endswith(" from random init"):  # the words compbench finetune gives the models it trains
        return finetune_label(start.removesuffix(" from random init"), "random", task)
    return finetune_label(start.rsplit(" (", 1)[0], "trained", task)


def relabelled(record: dict, labels: dict[str, str]) -> dict:
    """``record`` with ``labels`` (model as asked for -> words) applied to it and to its ``base_model``: a report of
    records written without labels (or with other ones) shows what each model is."""
    if not labels:
        return record
    record = dict(record)
    if record["model"] in labels:
        record["label"] = labels[record["model"]]
    base = record.get("base_model")
    if base and base.get("model") in labels:
        record["base_model"] = {**base, "label": labels[base["model"]]}
    return record


def fine_tuned_on(record: dict) -> str | None:
    """For a fine-tune of a saved variant, the task (and version) it was fine-tuned on: its own ``model_source``
    (``compbench finetune: DIR (...) on fsdd-digits v2``) is not its base model's."""
    base, source = record.get("base_model") or {}, record.get("model_source") or ""
    if not record.get("compression") or not source.startswith("compbench finetune:") or \
            source == base.get("model_source"):
        return None
    return source.rpartition(" on ")[2] or None


def _curve_option(step: dict) -> str | None:
    """The option that plays the amount's part for ``step``'s compressor (early_exit: threshold), if any."""
    return COMPRESSORS.get(step["name"]).curve_option if step["name"] in COMPRESSORS.names() else None


def _changed_options(step: dict, with_curve: bool) -> list[str]:
    """A step's options that differ from its compressor's defaults (none for names no longer registered);
    its curve option always (``with_curve``) or never."""
    if step["name"] not in COMPRESSORS.names():
        return []
    declared, curve = COMPRESSORS.get(step["name"]).options, _curve_option(step)

    def shown(name: str, value) -> bool:
        return with_curve if name == curve else value != declared[name].default

    return [f"{name}: {json.dumps(value)}" for name, value in (step.get("options") or {}).items()
            if name in declared and shown(name, value)]


def _with_options(text: str, step: dict, with_curve: bool = True) -> str:
    changed = _changed_options(step, with_curve)
    return f"{text} ({'; '.join(changed)})" if changed else text


def step_with_options(step: dict) -> str:
    """One step as on the command line with the options it changed (and its curve option)."""
    return _with_options(step_label(step), step)


def variant_label(record: dict) -> str:
    """The steps as on the command line, each with the options it changed from the defaults (and its curve
    option): ``budget_pruning=0.4 (importance: "fisher"; mask_tuning: true)``, ``early_exit (threshold: 0.5)``;
    a saved variant fine-tuned afterwards says so (``..., fine-tuned on fsdd-digits v2``)."""
    steps = record.get("compression") or []
    if not steps:
        return record["model"] if record.get("baseline") else compression_label(record)
    tuned = fine_tuned_on(record)
    return ",".join(step_with_options(step) for step in steps) + (f", fine-tuned on {tuned}" if tuned else "")


def compressor_of(record: dict) -> str:
    """What a chart colours by: the one step's compressor with its changed options (not its curve option),
    ``pipeline``, ``dense``, or :data:`ANOTHER_MODEL` for a model measured against a ``--baseline`` model."""
    steps = record.get("compression") or []
    if not steps:
        return ANOTHER_MODEL if record.get("baseline") else "dense"
    return _with_options(steps[0]["name"], steps[0], with_curve=False) if len(steps) == 1 else "pipeline"


def step_amount(step: dict) -> float:
    """Where a step lies on its compressor's curve: its amount, or its curve option (NaN for neither)."""
    curve = _curve_option(step)
    if step.get("amount") is not None or curve is None:
        return _nan(step.get("amount"))
    return _nan((step.get("options") or {}).get(curve))


def steps_summary(record: dict) -> str:
    """What each step removed or changed: ``36/144 heads removed``, ``bfloat16``, ``72/72 Linears quantized``."""
    parts = []
    for step in record.get("manifest") or []:
        unit = step.get("unit", "removed")  # the manifest names what it counts (older ones do not)
        if step.get("total") and step.get("removed"):
            parts.append(f"{step['name']}: {step['removed']:,}/{step['total']:,} {unit}")
        elif "dtype" in step:
            counted = f", {step['total']:,} {unit}" if step.get("total") and "unit" in step else ""
            parts.append(f"{step['name']}: {step['dtype']}{counted}")
        else:
            parts.append(step["name"])
    return "; ".join(parts)


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _row(record: dict) -> dict:
    latency = record.get("latency_ms") or {}
    speedup_ci = record.get("speedup_ci95") or [None, None]
    quality, fidelity = record.get("quality") or {}, record.get("fidelity") or {}
    steps = record.get("compression") or []
    row = {
        "model": model_label(record), "input": input_label(record),
        "per_example": record["input"]["kind"] == "examples",
        "machine": machine_label(record) if latency else NOT_TIMED,
        "variant": variant_label(record), "compressor": compressor_of(record),
        "amount": step_amount(steps[0]) if len(steps) == 1 else math.nan,
        "steps": steps_summary(record), "is_dense": not steps and not record.get("baseline"),
        "model_name": record["model"], "model_identity": model_identity(record), "baseline": record.get("baseline"),
        "params": record["params"], "params_nonzero": record["params_nonzero"],
        "macs": record["macs"], "macs_effective": record["macs_effective"],
        "latency_ms": _nan(latency.get("median")), "latency_ci_low": _nan(latency.get("ci95_low")),
        "latency_ci_high": _nan(latency.get("ci95_high")), "runs": latency.get("runs"),
        "converged": latency.get("converged"),
        "speedup": _nan(record.get("speedup")), "speedup_ci_low": _nan(speedup_ci[0]),
        "speedup_ci_high": _nan(speedup_ci[1]), "predicted_speedup": _nan(record.get("predicted_speedup")),
        "task": quality.get("task"), "metric": quality.get("metric"), "split": quality.get("split"),
        "quality": _nan(quality.get("value")),
        "quality_examples": quality_examples(quality),
        "fidelity_cka": _nan(fidelity.get("output_cka", fidelity.get("last_cka"))),  # older records: last_cka
        "macs_by_component": record["macs_by_component"],
        "sweep": record.get("sweep"), "job": record.get("job"), "run_id": record["run_id"],
    }
    rtf = real_time_factor(record) or {}
    row["rtf"] = _nan(rtf.get("median", rtf.get("mean")))
    row["rtf_ci_low"], row["rtf_ci_high"] = _nan(rtf.get("ci95_low")), _nan(rtf.get("ci95_high"))
    row["speedup_vs_predicted"] = row["speedup"] / row["predicted_speedup"]
    row["baseline_ms"] = _nan((record.get("baseline_latency_ms") or {}).get("median"))
    if row["is_dense"]:  # the dense model against itself
        relative = (1.0, 1.0, 1.0) if latency else (math.nan,) * 3
    else:
        relative = (1 / row["speedup"], 1 / row["speedup_ci_high"], 1 / row["speedup_ci_low"])
    row["relative_latency"], row["relative_latency_low"], row["relative_latency_high"] = relative
    row["runtime"] = runtime_name(record)
    row["timed"] = bool(latency)
    row["group"] = group_of(row)
    # where it was measured, by the model's identity: its configuration, whatever words it is shown by and whichever
    # table it is drawn in (beside_baselines, one_label_per_model)
    row["own_group"] = group_of(row, row["model_identity"])
    return row


def group_of(row: dict, model: str | None = None) -> str:
    """The table and chart panel a row is drawn in: its model (shown by ``row['model']``), input size, runtime
    (speedups are against the same runtime) and, where timed, machine."""
    runtime = "" if row["runtime"] == "eager" else f" · {row['runtime']}"
    return f"{model or row['model']} · {row['input']}{runtime}" + (f" · {row['machine']}" if row["timed"] else "")


def one_label_per_model(rows: list[dict]) -> None:
    """Two models shown by the same words (two trainings of one recipe, two folders given one label) stay apart:
    each is shown by its words and the name its records give it."""
    identities: dict[str, set[str]] = {}
    for row in rows:
        identities.setdefault(row["model"], set()).add(row["model_identity"])
    for row in rows:
        if len(identities[row["model"]]) > 1:
            row["model"] = f"{row['model']} ({row['model_identity'].rsplit(' (', 1)[0]})"
            row["group"] = group_of(row)


def beside_baselines(rows: list[dict]) -> None:
    """A model measured against a ``--baseline`` model joins the baseline's rows (its table and charts, its quality
    change against the baseline's): those of the baseline's dense row at the same input size, under the same runtime,
    on the same machine (a sweep keeps the baseline's record once, from its own job)."""
    dense = {(row["model_name"], row["input"], row["runtime"], row["machine"]): row for row in rows if row["is_dense"]}
    for row in rows:
        reference = dense.get((row["baseline"], row["input"], row["runtime"], row["machine"])) if row["baseline"] \
            else None
        if reference is not None:
            row["model"], row["model_identity"] = reference["model"], reference["model_identity"]
            row["group"] = group_of(row)


def pareto_mask(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[bool]:
    """For each point, whether no other point is at least as good in every objective and better in one.

    ``senses`` says per objective whether more (``max``) or less (``min``) is better. Equal points
    do not dominate each other, so both stay on the front."""
    signs = [1 if sense == "max" else -1 for sense in senses]
    scored = [[sign * value for sign, value in zip(signs, point, strict=True)] for point in points]
    if len(signs) == 2:
        return _pareto_mask_2d(scored)
    mask = []
    for i, a in enumerate(scored):
        dominated = any(all(b_k >= a_k for a_k, b_k in zip(a, b, strict=True)) and b != a
                        for j, b in enumerate(scored) if j != i)
        mask.append(not dominated)
    return mask


def _pareto_mask_2d(scored: list[list[float]]) -> list[bool]:
    """:func:`pareto_mask` of two objectives, both to be maximised, in one sort and one pass (every front here
    has two; comparing every pair took minutes for a group of tens of thousands of points). Point a is
    dominated by b when b's first is greater and its second at least as great, or its first equal and its
    second greater."""
    order = sorted(range(len(scored)), key=lambda i: (-scored[i][0], -scored[i][1]))
    mask = [True] * len(scored)
    best_of_greater_first = -math.inf  # the greatest second objective among points with a greater first one
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and scored[order[end]][0] == scored[order[start]][0]:
            end += 1
        greatest_here = scored[order[start]][1]  # sorted: the first of a run of equal firsts has the greatest second
        for i in order[start:end]:
            second = scored[i][1]
            mask[i] = not (second < greatest_here or second <= best_of_greater_first)
        best_of_greater_first = max(best_of_greater_first, greatest_here)
        start = end
    return mask


def group_fronts(group: pd.DataFrame) -> list[str]:
    """The fronts of a group: quality against MACs (and latency, if timed), else latency (or MACs) against params."""
    has_quality = group["quality"].notna().any()
    timed = group["relative_latency"].notna().any()
    if has_quality:
        return ["quality_macs"] + (["quality_latency"] if timed else [])
    return ["latency_params"] if timed else ["macs_params"]


# a row of the landscape: what was measured, where and how (its own group: a model measured against a baseline is
# drawn in the baseline's, and stays a configuration of its own)
CONFIGURATION = ("own_group", "variant", "task")


def configuration_of(row: dict) -> tuple:
    return tuple(row[column] for column in CONFIGURATION)


def latest_per_configuration(records: list[dict]) -> tuple[list[dict], list[tuple], dict[tuple, int]]:
    """The row of the latest record (by timestamp; the later in the files where equal) of each configuration,
    in the order configurations first appear in ``records``; each row's configuration; and how many of
    ``records`` measured each."""
    latest: dict[tuple, tuple[str, int]] = {}
    counts: dict[tuple, int] = {}
    rows = [_row(r) for r in records]
    one_label_per_model(rows)
    beside_baselines(rows)
    for index, (record, row) in enumerate(zip(records, rows, strict=True)):
        key = configuration_of(row)
        counts[key] = counts.get(key, 0) + 1
        if key not in latest or record["timestamp"] >= latest[key][0]:
            latest[key] = (record["timestamp"], index)
    return [rows[index] for _, index in latest.values()], list(latest), counts


def landscape_frame(records: list[dict] | Landscape) -> pd.DataFrame:
    """One row per configuration (:data:`CONFIGURATION`: its latest record; ``measurements``: how many records
    measured it) with the landscape's columns, quality change against dense, and Pareto marks.

    Each ``pareto_<front>`` column is True or False for the rows of groups that get that front
    (rows missing one of its values are False) and missing (NA) elsewhere."""
    measurements = None
    if isinstance(records, Landscape):  # its records may be fewer than were read: it counted them as it read
        records, measurements = records.records, records.measurements
    rows, keys, counts = latest_per_configuration(records)
    measurements = measurements or counts
    frame = pd.DataFrame(rows)
    frame["measurements"] = [measurements[key] for key in keys]
    dense_quality = {}
    for row in frame[frame["is_dense"] & frame["quality"].notna()].itertuples():
        dense_quality.setdefault((row.model, row.task, row.split), row.quality)
    frame["quality_delta"] = [q - dense_quality.get((m, t, s), math.nan)
                              for m, t, s, q in zip(frame["model"], frame["task"], frame["split"], frame["quality"],
                                                    strict=True)]
    for front in FRONTS:
        frame[f"pareto_{front}"] = pd.Series([pd.NA] * len(frame), dtype="boolean")
    for _, group in frame.groupby("group", sort=False):
        for front in group_fronts(group):
            columns = [column for column, _ in FRONTS[front]]
            frame.loc[group.index, f"pareto_{front}"] = False
            # a quality front is one per task: one task's quality is no measure of another's (nor accuracy of WER)
            parts = group.groupby("task", sort=False) if "quality" in columns else [(None, group)]
            for _, part in parts:
                metric = metric_of(part["metric"].dropna().iloc[0] if part["metric"].notna().any() else None)
                senses = [metric.sense if column == "quality" else sense for column, sense in FRONTS[front]]
                complete = part.dropna(subset=columns)
                frame.loc[complete.index, f"pareto_{front}"] = pareto_mask(complete[columns].to_numpy().tolist(),
                                                                           senses)
    marks = {f: frame[f"pareto_{f}"].fillna(False).astype(bool) for f in FRONTS}
    frame["pareto"] = [", ".join(FRONT_LABELS[f] for f in FRONTS if marks[f][i]) for i in frame.index]
    return frame


def _interval(value: float, low: float, high: float, fmt: str) -> str:
    if math.isnan(value):
        return ""
    text = format(value, fmt)
    return text if math.isnan(low) else f"{text} [{format(low, fmt)}, {format(high, fmt)}]"


UNCONVERGED = "*"  # beside a median (and its speedup) whose timing did not reach its target interval
UNCONVERGED_MEANS = "the timing did not reach its target interval before its budget ran out"
UNCONVERGED_NOTE = (f"{UNCONVERGED} {UNCONVERGED_MEANS} (the record's warning says by how much): compare such "
                    "medians and speedups with care; hollow markers in the charts")


def unconverged(frame: pd.DataFrame) -> pd.Series:
    """Rows timed without their timing converging (False, not None: a row never timed is not marked)."""
    return frame["converged"].map(lambda value: value is False)


def group_tables(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per group (model, input size and, where timed, machine): a display table, dense first."""
    tables = []
    for title, group in frame.groupby("group", sort=False):
        group = group.sort_values("is_dense", ascending=False, kind="stable")
        timed, has_quality = group["latency_ms"].notna().any(), group["quality"].notna().any()
        table = pd.DataFrame({
            "variant": group["variant"], "steps": group["steps"],
            "params": group["params"].map("{:,}".format),
            "params nonzero": group["params_nonzero"].map(lambda v: "?" if v is None or v != v else f"{int(v):,}"),
            "GMACs": (group["macs"] / 1e9).map("{:.3f}".format),
            "GMACs effective": (group["macs_effective"] / 1e9).map("{:.3f}".format)})
        if timed:
            marks = [f" {UNCONVERGED}" if mark else "" for mark in unconverged(group)]
            table["median ms [95% CI]"] = [_interval(*v, ".2f") + mark for *v, mark in
                                           zip(group["latency_ms"], group["latency_ci_low"], group["latency_ci_high"],
                                               marks, strict=True)]
            if group["rtf"].notna().any():  # speech: seconds of compute per second of audio
                table["RTF [95% CI]"] = [_interval(*v, ".3f") for v in
                                         zip(group["rtf"], group["rtf_ci_low"], group["rtf_ci_high"], strict=True)]
            table["dense ms, same run"] = group["baseline_ms"].map(lambda v: "" if v != v else f"{v:.2f}")
            table["speedup [95% CI]"] = [_interval(*v, ".2f") + (mark if v[0] == v[0] else "") for *v, mark in
                                         zip(group["speedup"], group["speedup_ci_low"], group["speedup_ci_high"],
                                             marks, strict=True)]
        table["MAC-predicted speedup"] = group["predicted_speedup"].map(lambda v: "" if v != v else f"{v:.2f}")
        if timed:
            table["measured / predicted"] = group["speedup_vs_predicted"].map(lambda v: "" if v != v else f"{v:.2f}")
        if has_quality:
            metric = group["metric"].dropna().iloc[0]
            task = group["task"].dropna().iloc[0]
            table[f"{task} {metric}{direction_note(metric)}"] = [
                ("" if v != v else f"{v:.4f}") + (f" ({n})" if n else "")
                for v, n in zip(group["quality"], group["quality_examples"], strict=True)]
            table["Δ vs dense"] = group["quality_delta"].map(lambda v: "" if v != v else f"{v:+.4f}")
            table["fidelity (output CKA)"] = group["fidelity_cka"].map(lambda v: "" if v != v else f"{v:.4f}")
        if (group["measurements"] > 1).any():  # reruns of a configuration: the latest is shown
            table["measurements"] = group["measurements"]
        table["Pareto"] = group["pareto"].map(lambda v: f"★ {v}" if v else "")
        tables.append((title, table.reset_index(drop=True)))
    return tables
