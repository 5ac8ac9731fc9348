"""Tasks: schema checks, lookup, data root, CSV, audio-folder and concatenated-clip sources, the shipped tasks."""

import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

from compbench.cli.validate import validate_tasks
from compbench.errors import InvalidInputError, UnknownNameError
from compbench.tasks import MissingDataError, find_task, load_split, resolve_data_root, task_files, tasks_dir
from compbench.tasks.schema import task_from_dict

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = os.environ.get("COMPBENCH_DATA_ROOT") or str(ROOT.parent / "shared" / "data")
needs_shared_data = pytest.mark.skipif(
    not Path(SHARED_DATA, "rt-polarity").is_dir() or not Path(SHARED_DATA, "fsdd").is_dir(),
    reason=f"task data not found at {SHARED_DATA} (set COMPBENCH_DATA_ROOT to the folder holding "
           "rt-polarity/ and fsdd/)")


def csv_task(**changes):
    task = {"schema_version": 1, "name": "toy", "version": 1, "description": "toy", "input": "text",
            "source": {"kind": "csv", "path": "toy", "files": {"train": "train.csv", "test": "test.csv"}},
            "labels": ["neg", "pos"], "metric": "accuracy", "protocol": "finetune"}
    task.update(changes)
    return task


def test_shipped_tasks_validate_and_match_their_file_names():
    assert set(task_files()) == {"rt-polarity", "fsdd-digits", "fsdd-speakers", "fsdd-sequences"}
    report = validate_tasks()
    assert {r["task"]: (r["output"], r["labels"]) for r in report} == {
        "rt-polarity": ("label", 2), "fsdd-digits": ("label", 10), "fsdd-speakers": ("label", 6),
        "fsdd-sequences": ("transcript", 0)}
    shipped = {path.name: path.read_bytes() for path in tasks_dir().glob("*.yaml")}  # installed or checkout
    assert shipped == {path.name: path.read_bytes() for path in (ROOT / "tasks").glob("*.yaml")}


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, "unknown key(s) 'colour'"),
    ({"version": "one"}, "'version' must be an integer"),
    ({"labels": ["only"]}, "at least two distinct"),
    ({"input": "video"}, "'input' must be one of text, audio"),
    ({"metric": "bleu"}, "'metric' must be one of"),
    ({"schema_version": 2}, "schema_version 2 is not supported"),
    ({"source": {"kind": "csv", "path": "toy", "files": {"train": "a.csv"}, "sep": ";"}}, "source: unknown key"),
    ({"source": {"kind": "sql"}}, "source 'kind' must be one of"),
    ({"source": {"kind": "csv", "path": "toy", "files": {"validation": "v.csv"}}}, "'split' must be one of"),
])
def test_schema_errors_name_the_file_and_key(change, message):
    with pytest.raises(InvalidInputError, match="toy.yaml: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        task_from_dict(csv_task(**change), "toy.yaml")


def test_missing_key():
    data = csv_task()
    del data["metric"]
    with pytest.raises(InvalidInputError, match="toy.yaml: missing key 'metric'"):
        task_from_dict(data, "toy.yaml")


def test_unknown_task_lists_close_names():
    with pytest.raises(UnknownNameError, match="Did you mean: rt-polarity"):
        find_task("rt-polarty")


def test_missing_data_root_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPBENCH_DATA_ROOT", raising=False)
    with pytest.raises(MissingDataError, match="no data root set: pass --data-root DIR or set"):
        resolve_data_root()
    monkeypatch.setenv("COMPBENCH_DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match=r"nowhere \(from \$COMPBENCH_DATA_ROOT\) is not a directory"):
        resolve_data_root()
    with pytest.raises(MissingDataError, match=r"rt-polarity.*does not exist \(data root"):
        load_split(find_task("rt-polarity"), "test", str(tmp_path))


def test_csv_source(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfine,pos\n")
    (tmp_path / "toy" / "test.csv").write_text("text,label\nmeh,maybe\n")
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(csv_task()))
    task = find_task(str(path))
    train = load_split(task, "train", str(tmp_path))
    assert train.inputs == ["good film", "bad film", "fine"] and train.labels.tolist() == [1, 0, 1]
    with pytest.raises(InvalidInputError, match=r"test.csv row 2: label 'maybe' is not one of"):
        load_split(task, "test", str(tmp_path))
    with pytest.raises(InvalidInputError, match="no 'dev' split"):
        load_split(task, "dev", str(tmp_path))


def write_tone(path: Path, seconds: float, rate: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)


def test_audio_folder_with_file_name_fields_resamples_to_16k(tmp_path):
    for digit in (3, 7):
        for index in range(4):
            write_tone(tmp_path / "rec" / f"{digit}_amy_{index}.wav", 0.25, 8000)
    pattern = r"(?P<digit>\d)_(?P<who>[a-z]+)_(?P<i>\d+)\.wav"
    task = task_from_dict({
        "schema_version": 1, "name": "toy-audio", "version": 1, "description": "d", "input": "audio",
        "source": {"kind": "audio_folder", "path": "rec", "filename_pattern": pattern,
                   "label": "digit", "split_field": "i", "split_ranges": {"test": [0, 0], "train": [1, 3]}},
        "labels": ["3", "7"], "metric": "accuracy", "protocol": "superb_probe"}, "toy.yaml")
    train, test = load_split(task, "train", str(tmp_path)), load_split(task, "test", str(tmp_path))
    assert (len(train), len(test)) == (6, 2)
    assert sorted(test.labels.tolist()) == [0, 1]
    assert all(x.dtype == np.float32 and x.shape == (4000,) for x in train.inputs)  # 0.25 s at 16 kHz


def test_audio_folder_with_split_and_label_folders(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for label in ("yes", "no"):
            for i in range(count):
                write_tone(tmp_path / "kw" / split / label / f"{i}.wav", 0.1, 16000)
    task = task_from_dict({
        "schema_version": 1, "name": "kw", "version": 1, "description": "d", "input": "audio",
        "source": {"kind": "audio_folder", "path": "kw"}, "labels": ["no", "yes"], "metric": "accuracy",
        "protocol": "superb_probe"}, "kw.yaml")
    train = load_split(task, "train", str(tmp_path))
    assert len(train) == 6 and sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert train.inputs[0].shape == (1600,)


@needs_shared_data
def test_shipped_task_data_has_the_documented_splits():
    report = {r["task"]: r["examples"] for r in validate_tasks(data_root=SHARED_DATA, check_data=True)}
    assert report["rt-polarity"] == {"train": 10283, "dev": 1116, "test": 1409}
    assert report["fsdd-digits"] == report["fsdd-speakers"] == {"train": 2400, "dev": 300, "test": 300}
    digits = find_task("fsdd-digits")
    splits = {split: set(load_split(digits, split, SHARED_DATA).ids) for split in report["fsdd-digits"]}
    assert not (splits["train"] & splits["dev"]) and not (splits["dev"] & splits["test"])
    test = load_split(find_task("fsdd-speakers"), "test", SHARED_DATA)
    assert np.bincount(test.labels).tolist() == [50] * 6
    assert all(name.split("_")[2].removesuffix(".wav") in {"0", "1", "2", "3", "4"} for name in test.ids)


def test_every_subpackage_is_packaged():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "compbench").rglob("__init__.py")}
    assert found | {"compbench.task_files"} == listed


WORDS = {"0": "zero", "1": "one", "2": "two"}


def sequences_task(**source_changes):
    """A transcription task of connected digits built from the clips :func:`write_clips` writes."""
    source = {"kind": "concatenated_clips",
              "clips": {"path": "clips", "filename_pattern": r"(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav",
                        "label": "digit", "split_field": "take", "split_ranges": {"train": [2, 5], "test": [0, 1]}},
              "words": WORDS, "utterances": {"train": 20, "test": 10}, "clips_per_utterance": [2, 4],
              "silence_ms": [50, 100], "same": "speaker", "seed": 3}
    source.update(source_changes)
    return {"schema_version": 1, "name": "seq", "version": 1, "description": "connected digits", "input": "audio",
            "output": "transcript", "source": source, "metric": "wer", "protocol": "finetune"}


def write_clips(folder: Path) -> dict[str, int]:
    """Clips of three digits by two speakers, takes 0-5, each of its own length (so a concatenation's length
    says which clips it holds): {file stem: samples at 16 kHz}."""
    folder.mkdir(parents=True)
    lengths = {}
    for n, (digit, speaker, take) in enumerate((d, s, t) for d in "012" for s in ("ann", "bob") for t in range(6)):
        stem = f"{digit}_{speaker}_{take}"
        lengths[stem] = 1600 + 16 * n
        soundfile.write(str(folder / f"{stem}.wav"), np.full(lengths[stem], 0.1 + 0.01 * n, np.float32), 16000)
    return lengths


def test_concatenated_clips_build_the_same_utterances_from_one_speaker_and_one_splits_clips(tmp_path):
    lengths = write_clips(tmp_path / "clips")
    task = task_from_dict(sequences_task(), "seq.yaml")
    assert (task.output, task.labels, task.metric) == ("transcript", [], "wer")
    for split, takes, count in (("train", range(2, 6), 20), ("test", range(2), 10)):
        examples = load_split(task, split, str(tmp_path))
        assert len(examples) == count and len(examples.labels) == 0
        for wave, transcript, example_id in zip(examples.inputs, examples.transcripts, examples.ids, strict=True):
            stems = example_id.split(":")[1].split("+")
            digits, speakers, used = zip(*(stem.split("_") for stem in stems), strict=True)
            assert 2 <= len(stems) <= 4 and len(set(speakers)) == 1  # one speaker per utterance
            assert all(int(take) in takes for take in used)  # this split's recordings only
            assert transcript == " ".join(WORDS[d] for d in digits)
            silence = len(wave) - sum(lengths[stem] for stem in stems)  # between the clips, 50-100 ms each
            assert 800 * (len(stems) - 1) <= silence <= 1600 * (len(stems) - 1)
            assert np.count_nonzero(wave) == len(wave) - silence
        again = load_split(task, split, str(tmp_path))
        assert again.ids == examples.ids and all(np.array_equal(a, b) for a, b in zip(again.inputs, examples.inputs,
                                                                                      strict=True))
    reseeded = load_split(task_from_dict(sequences_task(seed=4), "seq.yaml"), "train", str(tmp_path))
    assert reseeded.ids != load_split(task, "train", str(tmp_path)).ids
    assert validate_tasks([str(write_task(tmp_path, sequences_task()))], str(tmp_path), check_data=True)[0][
        "examples"] == {"train": 20, "test": 10}


def write_task(folder: Path, task: dict) -> Path:
    path = folder / f"{task['name']}.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


@pytest.mark.parametrize("change, message", [
    ({"labels": ["a", "b"]}, "a transcription task has no 'labels'"),
    ({"metric": "accuracy"}, "'metric' must be one of wer, cer"),
    ({"output": "label", "labels": ["a", "b"], "metric": "accuracy"},
     "a concatenated_clips source gives each example a transcript"),
    ({"source": {**sequences_task()["source"], "same": "accent"}}, "source.same 'accent' is not a group"),
    ({"source": {**sequences_task()["source"], "clips_per_utterance": [3, 2]}}, "source.clips_per_utterance must be"),
    ({"source": {**sequences_task()["source"], "utterances": {"train": 0}}}, "source.utterances.train must be"),
    ({"source": {**sequences_task()["source"], "words": {"0": "oh no"}}}, "source.words must map each clip label"),
])
def test_transcription_task_errors_name_the_file_and_key(change, message):
    with pytest.raises(InvalidInputError, match=message):
        task_from_dict({**sequences_task(), **change}, "seq.yaml")


def test_a_clip_whose_label_has_no_word_is_one_error_naming_it(tmp_path):
    write_clips(tmp_path / "clips")
    task = task_from_dict(sequences_task(words={"0": "zero", "1": "one"}), "seq.yaml")
    with pytest.raises(InvalidInputError, match=r"2_ann_2\.wav: label '2' has no word in seq\.yaml's source\.words"):
        load_split(task, "train", str(tmp_path))


def test_a_probe_mapping_belongs_to_a_transcription_task_evaluated_by_the_probe():
    task = task_from_dict({**sequences_task(), "protocol": "superb_probe", "probe": {"hidden": 32, "epochs": 2}},
                          "seq.yaml")
    assert (task.probe.hidden, task.probe.epochs, task.probe.layers) == (32, 2, 2)
    assert task_from_dict(sequences_task(), "seq.yaml").probe is None
    with pytest.raises(InvalidInputError, match="'probe' sets the recognition probe of a transcription task with "
                                                "protocol superb_probe"):
        task_from_dict({**sequences_task(), "probe": {"hidden": 32}}, "seq.yaml")
    with pytest.raises(InvalidInputError, match="probe.hidden must be > 0"):
        task_from_dict({**sequences_task(), "protocol": "superb_probe", "probe": {"hidden": 0}}, "seq.yaml")
    with pytest.raises(InvalidInputError, match="seq.yaml: probe: unknown key"):
        task_from_dict({**sequences_task(), "protocol": "superb_probe", "probe": {"units": 3}}, "seq.yaml")


@needs_shared_data
def test_fsdd_sequences_keeps_every_recording_in_its_split_and_its_file_documents_its_numbers():
    """The shipped task: FSDD's takes 0-4 test, 5-9 dev, 10-49 train (as fsdd-digits), utterances of 2 to 7 digits
    by one speaker; the counts, mean seconds and words its comments give (dev and test: train takes 10 s)."""
    task = find_task("fsdd-sequences")
    documented = (tasks_dir() / "fsdd-sequences.yaml").read_text()
    for split, (low, high) in (("dev", (5, 9)), ("test", (0, 4))):
        examples = load_split(task, split, SHARED_DATA)
        stems = [example_id.split(":")[1].split("+") for example_id in examples.ids]
        assert all(low <= int(stem.split("_")[2]) <= high for utterance in stems for stem in utterance)
        assert all(2 <= len(u) <= 7 and len({stem.split("_")[1] for stem in u}) == 1 for u in stems)
        assert [len(t.split()) for t in examples.transcripts] == [len(u) for u in stems]
        seconds = sum(len(wave) for wave in examples.inputs) / 16000
        words = sum(len(t.split()) for t in examples.transcripts)
        line = (f"{split:<5} {len(examples):>4} utterances, mean {seconds / len(examples):.2f} s, "
                f"{seconds / 60:4.1f} min, {words:>4} words")
        assert line in documented, line
