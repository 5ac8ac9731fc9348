"""--label: what a model is, in words, for tables and charts; records carry it, the report and the CLI table
show it instead of the folder a model was in."""

import json

import pytest
from conftest import without_progress

from compbench.cli.main import main
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.report.landscape import landscape_frame


def test_each_label_names_the_model_of_its_place_and_the_rest_keep_their_names():
    records = measure(MeasureOptions(models=["distilhubert", "hubert-base"], labels=["the student"],
                                     seconds=[0.25], latency=False))
    assert [r.get("label") for r in records] == ["the student", None]
    assert list(landscape_frame(records)["model"]) == ["the student", "hubert-base (random weights)"]


@pytest.mark.parametrize(("labels", "message"), [
    (["a", "b"], "2 --label for 1 --model"), ([" "], "empty"), (["a", "a"], "given twice")])
def test_a_label_without_its_model_an_empty_one_or_one_twice_is_refused(labels, message):
    models = ["distilhubert"] if len(set(labels)) > 1 or labels == [" "] else ["distilhubert", "hubert-base"]
    with pytest.raises(InvalidInputError, match=message):
        measure(MeasureOptions(models=models, labels=labels, latency=False))


def test_labels_may_name_their_models_as_the_report_takes_them_but_not_half_of_them():
    records = measure(MeasureOptions(models=["distilhubert", "hubert-base"], baseline="hubert-base",
                                     labels=["hubert-base=the teacher", "distilhubert=the student"],
                                     seconds=[0.25], latency=False))
    assert {r["model"]: r.get("label") for r in records} == {"hubert-base": "the teacher",
                                                             "distilhubert": "the student"}
    for labels, message in ((["distilhubert=a", "b"], "not some of each"),
                            (["distilhubert=a", "distilhubert=b"], "distilhubert has two --label")):
        with pytest.raises(InvalidInputError, match=message):
            measure(MeasureOptions(models=["distilhubert", "hubert-base"], labels=labels, latency=False))
    [record] = measure(MeasureOptions(models=["distilhubert"], labels=["x=y"], seconds=[0.25], latency=False))
    assert record["label"] == "x=y"  # words with '=' that name no model are the label itself


def test_the_cli_shows_the_label_and_the_report_relabels_records_written_without_one(tmp_path, capsys):
    out = tmp_path / "runs.jsonl"
    assert main(["measure", "--model", "distilhubert", "--label", "DistilHuBERT", "--seconds", "0.25",
                 "--no-latency", "--out", str(out)]) == 0
    assert "DistilHuBERT" in capsys.readouterr().out
    assert json.loads(out.read_text())["label"] == "DistilHuBERT"
    plain = tmp_path / "plain.jsonl"
    assert main(["measure", "--model", "distilhubert", "--seconds", "0.5", "--no-latency", "--out", str(plain)]) == 0
    assert main(["report", str(plain), "--out", str(tmp_path / "report"), "--format", "md",
                 "--label", "distilhubert=the student"]) == 0
    assert "the student" in (tmp_path / "report" / "landscape.md").read_text()
    capsys.readouterr()
    assert main(["report", str(plain), "--out", str(tmp_path / "bad"), "--label", "distilhubert"]) == 2
    err = without_progress(capsys.readouterr().err)
    assert err == "compbench: error: --label takes MODEL=NAME, got 'distilhubert'\n"
    assert not (tmp_path / "bad").exists()
