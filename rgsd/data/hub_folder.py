"""A local folder laid out like a Hugging Face hub dataset: its configurations, splits and data files.

``datasets`` decides what the folder holds (a README.md ``configs:`` front matter listing ``data_files`` per
configuration and split, or the file-name layouts ``data/train-*.parquet``, ``train.jsonl``, ``test/*.csv``); rgsd
then reads each data file itself, so every problem is named ``FILE:LINE`` in the file that holds it, and records
keep their own shape (the ``datasets`` JSON builder would give every rubric item every key seen in the file).
A folder without ``configs:`` whose subfolders are configurations (``<config>/<split>.jsonl``) takes the
subfolder's name as its configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rgsd.data.errors import file_error

# The files rgsd numbers by line or row; a split with any other file (.arrow, .txt, .gz) is read by ``datasets``.
READABLE = (".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".tsv")


@dataclass(frozen=True)
class SplitFiles:
    """The data files of one split of one configuration (``delimiter`` from the configuration, if it sets one).

    ``folder`` and ``config`` are what ``datasets`` is given: for the ``<config>/<split>.jsonl`` layout the
    subfolder and no configuration name."""

    folder: Path
    config: str | None
    split: str
    files: list[Path]
    delimiter: str | None = None

    @property
    def readable(self) -> bool:
        return bool(self.files) and all(f.suffix.lower() in READABLE for f in self.files)


def _config_names(folder: Path) -> list[str]:
    import datasets

    try:
        return list(datasets.get_dataset_config_names(str(folder)))
    except Exception as err:  # datasets raises many types; name the folder in every case
        raise file_error(str(folder), "file", f"cannot read as a Hugging Face dataset folder: {err}") from err


def _pick_config(folder: Path, config: str | None) -> tuple[Path, str | None]:
    names = _config_names(folder)
    declared = names != ["default"]  # "default" is what datasets names a folder without ``configs:``
    if config is None:
        if len(names) > 1:
            raise file_error(str(folder), "dataset_config",
                             f"several configurations ({', '.join(names)}); pass one with --dataset-config")
        return folder, None
    if config in names:
        return folder, config
    if not declared and (folder / config).is_dir():
        return folder / config, None  # the <config>/<split>.jsonl layout: the subfolder is the configuration
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    available = ", ".join(names) if declared else f"subfolders: {', '.join(subdirs) or 'none'}"
    raise file_error(str(folder), "dataset_config", f"no configuration {config!r} (available: {available})")


def _pick_split(label: str, splits: list[str], split: str | None) -> str:
    if split is not None:
        if split not in splits:
            raise file_error(label, "split", f"no split {split!r} (available: {', '.join(splits)})")
        return split
    if len(splits) == 1:
        return splits[0]
    raise file_error(label, "split", f"several splits ({', '.join(splits)}); pass one with --split")


def _subfolder_configs(folder: Path, files: list[Path]) -> list[str]:
    """Top-level subfolders (other than ``data``) the files come from: more than one looks like configurations."""
    root = folder.resolve()  # datasets gives absolute paths
    rels = [f.relative_to(root).parts for f in files if f.is_relative_to(root)]
    tops = {parts[0] for parts in rels if len(parts) > 1}
    return sorted(tops - {"data"})


def split_files(folder: Path, config: str | None, split: str | None) -> SplitFiles:
    """The files of ``split`` of configuration ``config`` of ``folder``, as ``datasets`` resolves them.

    Raises :class:`DataError` naming the folder and the choices when the configuration or split is missing,
    unknown or ambiguous.
    """
    import datasets

    root, name = _pick_config(folder, config)
    try:
        builder = datasets.load_dataset_builder(str(root), name=name)
    except Exception as err:  # datasets raises many types; name the folder in every case
        raise file_error(str(folder), "file", f"cannot read as a Hugging Face dataset folder: {err}") from err
    data_files = builder.config.data_files or {}
    chosen = _pick_split(str(folder), list(data_files), split)
    files = [Path(f) for f in data_files[chosen]]
    if name is None and root == folder and len(tops := _subfolder_configs(root, files)) > 1:
        raise file_error(str(folder), "dataset_config", f"split {chosen!r} has files in several subfolders "
                         f"({', '.join(tops)}); pass the one to read with --dataset-config")
    if getattr(builder.config, "field", None):  # JSON records nested under a key: only datasets reads those
        files = []
    delimiter = None
    if builder.name == "csv":
        sep = getattr(builder.config, "delimiter", None) or getattr(builder.config, "sep", None)
        delimiter = sep if sep not in (None, ",") else None
    return SplitFiles(root, name, chosen, files, delimiter)

