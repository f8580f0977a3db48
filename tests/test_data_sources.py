"""Data from anywhere: HF dataset splits and column mapping, the same in the loader, the CLIs and the trainers."""

from __future__ import annotations

import pytest

from rgsd.cli import main
from rgsd.data.loaders import DataError, load_examples


def _rows(split: str) -> list[dict]:
    return [
        {"uid": f"{split}-{i}", "question": f"How do I store {food}?",
         "meta": {"criteria": [{"criterion": f"Mentions the fridge for {food}", "points": 3},
                               {"criterion": "Claims it keeps forever", "points": -2}]}}
        for i, food in enumerate(["rice", "soup"])
    ]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    import datasets

    path = tmp_path_factory.mktemp("hf") / "store"
    datasets.DatasetDict({s: datasets.Dataset.from_list(_rows(s)) for s in ("train", "test")}).save_to_disk(str(path))
    return path


COLUMNS = {"prompt": "question", "rubric": "meta.criteria", "id": "uid"}


def test_split_and_column_mapping(hf_folder):
    result = load_examples(hf_folder, split="test", columns=COLUMNS)
    assert [ex.id for ex in result.examples] == ["test-0", "test-1"]
    ex = result.examples[1]
    assert ex.prompt[-1]["content"] == "How do I store soup?"
    assert [(c.text, c.weight, c.polarity) for c in ex.rubric] == [
        ("Mentions the fridge for soup", 3.0, "positive"), ("Claims it keeps forever", 2.0, "negative")]


def test_missing_mapped_column_names_the_column_and_row(hf_folder):
    with pytest.raises(DataError, match="missing column 'question_text'"):
        load_examples(hf_folder, split="train", columns={**COLUMNS, "prompt": "question_text"})
    with pytest.raises(DataError, match="config_name: a dataset configuration name applies only to a hub dataset"):
        load_examples(hf_folder, split="train", config_name="default")


def test_every_data_command_takes_the_same_options(hf_folder, capsys):
    flags = ["--split", "test", "--prompt-column", "question", "--rubric-column", "meta.criteria", "--id_column", "uid"]
    assert main(["data", "lint", str(hf_folder), *flags]) == 0
    assert "2 examples, 4 criteria" in capsys.readouterr().out
    assert main(["data", "lint", str(hf_folder), "--split", "test"]) == 1  # without the mapping: no format
    for command in (["eval"], ["gap"], ["diagnose"], ["compare"], ["data", "convert"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        help_text = capsys.readouterr().out
        assert "--prompt-column" in help_text and "--dataset-config" in help_text and "split" in help_text, command
    # the old spelling of the configuration still works, with a warning
    with pytest.warns(FutureWarning, match="'config_name' is deprecated"):
        main(["data", "lint", str(hf_folder), *flags, "--config-name", "default"])


def test_trainers_read_the_same_fields(hf_folder):
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.train.config import RGSDConfig
    from rgsd.train.setup import load_training_examples

    for cls in (RGSDConfig, GRPORunConfig):
        cfg = cls(dataset_name=str(hf_folder), dataset_train_split="train", prompt_column="question",
                  rubric_column="meta.criteria", id_column="uid")
        assert [ex.id for ex in load_training_examples(cfg)] == ["train-0", "train-1"]
