"""Where rubric data comes from: one set of option fields for every command and trainer that reads it.

The names are TRL's (``dataset_name``, ``dataset_config``, ``dataset_train_split``, ``dataset_test_split``);
the old ``--data``, ``--config-name`` and ``--split`` keep working for one release with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rgsd.checks import AT_LEAST_ONE
from rgsd.options import arg

COLUMN_TARGETS = ("prompt", "rubric", "id")
Format = Literal["auto", "healthbench", "rar", "rubrichub", "canonical", "generic"]


@dataclass
class DatasetArgs:
    """A rubric dataset: file, folder or hub name, its format, configuration and source columns."""

    DEPRECATED: ClassVar[dict[str, str]] = {"data": "dataset_name", "config_name": "dataset_config",
                                            "data_config_name": "dataset_config"}

    dataset_name: str = arg(
        "", "Rubric data: a file (JSONL/JSON/CSV/TSV/Parquet), a local Hugging Face dataset folder (hub layout "
            "or save_to_disk), a hub name, or demo:train / demo:heldout (the demo's data).")
    format: Format = arg("auto", "Data format; auto = detected from the first records.")
    dataset_config: str | None = arg(None, "Configuration (subset) of a Hugging Face dataset: a hub name or a "
                                           "local folder (README.md configs:, or a subfolder).")
    prompt_column: str | None = arg(None, "Source column holding the prompt (null = the format's own name; "
                                          "a.b reaches into an object).")
    rubric_column: str | None = arg(None, "Source column holding the rubric (null = the format's own name).")
    id_column: str | None = arg(None, "Source column holding the example id (null = the format's own name).")

    def columns(self) -> dict[str, str] | None:
        cols = {t: getattr(self, f"{t}_column") for t in COLUMN_TARGETS if getattr(self, f"{t}_column")}
        return cols or None


@dataclass
class TrainDataArgs(DatasetArgs):
    """Training data (trainers): the dataset plus its split, polarity policy and an example cap."""

    DEPRECATED: ClassVar[dict[str, str]] = {**DatasetArgs.DEPRECATED, "data_split": "dataset_train_split"}

    dataset_train_split: str | None = arg(None, "Split of a Hugging Face dataset to train on (e.g. train).")
    polarity: Literal["sign", "avoid-positive"] = arg(
        "sign", "Polarity policy for negative weights (see docs/data-formats.md).")
    max_examples: int | None = arg(None, "Use only the first N examples.", check=AT_LEAST_ONE)

    def source_kwargs(self) -> dict[str, Any]:
        """``load_examples`` keyword arguments of these fields (besides the source itself)."""
        return {"format": self.format, "polarity": self.polarity, "split": self.dataset_train_split,
                "config_name": self.dataset_config, "columns": self.columns()}


@dataclass
class EvalDataArgs(DatasetArgs):
    """Evaluation data (eval, gap, diagnose, compare): the dataset plus its split and a prompt cap."""

    DEPRECATED: ClassVar[dict[str, str]] = {**DatasetArgs.DEPRECATED, "split": "dataset_test_split"}

    dataset_test_split: str | None = arg(None, "Split of a Hugging Face dataset to evaluate on (e.g. test).")
    limit: int | None = arg(None, "Use only the first N examples.", check=AT_LEAST_ONE)

    def source_kwargs(self) -> dict[str, Any]:
        """``load_examples`` keyword arguments of these fields (besides the source itself)."""
        return {"format": self.format, "split": self.dataset_test_split, "limit": self.limit,
                "config_name": self.dataset_config, "columns": self.columns()}
