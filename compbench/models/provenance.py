"""Where saved weights came from, when it is not a pretrained checkpoint: trained here by ``compbench
finetune`` from no pretrained checkpoint, or a variant of such (or of random) weights. Records say
so instead of calling those weights pretrained. And what a saved model is, in words, for tables and
charts (:func:`saved_label`): ``distilhubert trained here on fsdd-digits``, not the folder it was in."""

from __future__ import annotations

import json
from pathlib import Path

from compbench.errors import ModelLoadError

FINETUNE_REPORT = "compbench_finetune.json"  # written by compbench finetune beside the weights
TRAINED_HERE = "trained-here"  # weights that compbench trained, from no pretrained checkpoint


def _finetune_report(directory: str | Path) -> dict | None:
    path = Path(directory) / FINETUNE_REPORT
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} is not valid JSON: {err.msg}") from None


def finetune_label(source_label: str, initialisation: str | None, task: str) -> str:
    """What ``compbench finetune`` made, in words: ``distilhubert trained here on fsdd-digits`` from random
    initialisation, ``minilm-l6 fine-tuned on rt-polarity`` from trained weights (``source_label``: what it started
    from, itself a label where that was a model trained here)."""
    if initialisation == "random":
        return f"{source_label} trained here on {task}"
    return f"{source_label}{', ' if ' on ' in source_label else ' '}fine-tuned on {task}"


def saved_label(directory: str | Path, manifest: dict | None) -> str | None:
    """What a saved model is, by its provenance: a fine-tune by what it started from and the task it learned
    (its report's ``label``; older reports by their source model's name), a variant that ``compbench compress``
    saved by the model it was compressed from (its steps are its own column). None: no provenance is saved."""
    report = _finetune_report(directory)
    if report is not None:
        return report.get("label") or finetune_label(report["source_model"], report.get("initialisation"),
                                                     report["task"])
    origin = (manifest or {}).get("source") or {}
    return origin.get("label") or origin.get("model")


def trained_here(directory: str | Path) -> tuple[str, str] | None:
    """(model_source, weights) of a model that compbench finetune trained from no pretrained checkpoint.

    Such a model is no pretrained checkpoint: its records name the recipe and the task instead,
    e.g. ``compbench finetune: distilhubert from random init on fsdd-digits v2`` and
    ``trained-here:fsdd-digits``. Fine-tuning a model that was itself trained here (or a variant
    of one) says what it started from: ``compbench finetune: DIR (trained-here:fsdd-digits) on ...``."""
    report = _finetune_report(directory)
    if report is None:
        return None
    start, model = report.get("initialisation"), report["source_model"]
    if start == "random":
        origin = f"{model} from random init"
    elif isinstance(start, str) and start.startswith(f"{TRAINED_HERE}:"):
        origin = f"{model} ({start})"
    else:
        return None
    return (f"compbench finetune: {origin} on {report['task']} v{report['task_version']}",
            f"{TRAINED_HERE}:{report['task']}")


def saved_provenance(directory: str | Path, manifest: dict | None) -> tuple[str, str] | None:
    """(model_source, weights) of saved weights that are not a pretrained checkpoint's.

    A model trained here says so (:func:`trained_here`); a variant that ``compbench compress``
    saved keeps the provenance of the model it was compressed from (random or trained-here
    weights stay so after compression)."""
    trained = trained_here(directory)
    if trained is not None:
        return trained
    origin = (manifest or {}).get("source") or {}
    weights = origin.get("weights")
    if weights == "random" or (isinstance(weights, str) and weights.startswith(f"{TRAINED_HERE}:")):
        return origin.get("model_source", "local"), weights
    return None


def fine_tuned_variant(directory: str | Path) -> tuple[list[dict], dict | None] | None:
    """(compression steps, origin) of a model that ``compbench finetune`` trained from a compressed variant: the
    variant's steps and the model its first step compressed, which its fine-tune keeps saying; None otherwise."""
    report = _finetune_report(directory)
    if report is None:
        return None
    steps = report.get("source_compression")
    return (steps, report.get("source_origin")) if steps else None
