"""Trackers through transformers' integration callbacks: report_to's meaning (none, all, names), a missing
tracker as one line and exit 2, TRL's metric names, TensorBoard under OUTPUT_DIR/tensorboard/RUN_NAME for both
trainers.

TensorBoard's event files are read back with tensorboard's EventAccumulator where tensorboard is installed;
elsewhere (CI has no tensorboard) a stand-in ``tensorboardX`` module records what transformers' own
TensorBoardCallback writes, so the same assertions run.
"""

from __future__ import annotations

import importlib.machinery
import json
import re
import sys
import types
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import DEMO_TRAIN

from rgsd.options import build as build_config
from rgsd.trackers import check_report_to, resolve_report_to
from rgsd.train.config import RGSDConfig
from rgsd.train.tracking import tracker_logs

UTILS = "transformers.integrations.integration_utils"


class ScalarLog:
    """What a run wrote to TensorBoard: ``folders`` that hold events, ``scalars[tag] = [(step, value)]``."""

    def __init__(self) -> None:
        self.folders: set[Path] = set()
        self.scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.texts: set[str] = set()


@pytest.fixture
def tensorboard(monkeypatch):
    """A function ``root -> ScalarLog``: real event files where tensorboard is installed, else a stand-in."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return _stand_in(monkeypatch)

    def read(root: Path) -> ScalarLog:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        log = ScalarLog()
        for events in sorted(root.rglob("events.out.tfevents.*")):
            log.folders.add(events.parent)
            acc = EventAccumulator(str(events))
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                log.scalars[tag] += [(e.step, e.value) for e in acc.Scalars(tag)]
            log.texts |= {t.split("/")[0] for t in acc.Tags().get("tensors", [])}
        return log

    return read


def _stand_in(monkeypatch):
    logs: dict[Path, ScalarLog] = {}

    class SummaryWriter:
        def __init__(self, log_dir: str) -> None:
            self.dir = Path(log_dir)

        def _log(self) -> ScalarLog:
            return logs.setdefault(self.dir, ScalarLog())

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self._log().folders.add(self.dir)
            self._log().scalars[tag].append((step, float(value)))

        def add_text(self, tag: str, text: str, step: int = 0) -> None:
            self._log().texts.add(tag)

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    module = types.ModuleType("tensorboardX")
    module.SummaryWriter = SummaryWriter
    module.__spec__ = importlib.machinery.ModuleSpec("tensorboardX", None)
    monkeypatch.setitem(sys.modules, "tensorboardX", module)  # transformers falls back to tensorboardX

    def read(root: Path) -> ScalarLog:
        out = ScalarLog()
        for folder, log in logs.items():
            if folder.is_relative_to(root):
                out.folders |= log.folders
                out.texts |= log.texts
                for tag, values in log.scalars.items():
                    out.scalars[tag] += values
        return out

    return read


def _cfg(tmp_path: Path, model_dir: Path, **kw) -> RGSDConfig:
    base = dict(dataset_name=str(DEMO_TRAIN), model_name_or_path=str(model_dir), max_steps=1,
                per_device_train_batch_size=2,
                max_new_tokens=6, output_dir=str(tmp_path / "run"), progress=False, probe_steps=0)
    base.update(kw)
    return build_config(RGSDConfig, None, base)


# ---- report_to's meaning -----------------------------------------------------------------------------------
def test_report_to_reads_as_in_transformers(monkeypatch):
    assert resolve_report_to(None) == resolve_report_to("none") == resolve_report_to(["none"]) == []
    assert resolve_report_to([]) == []
    monkeypatch.setattr(f"{UTILS}.get_available_reporting_integrations", lambda: ["tensorboard", "trackio"])
    assert resolve_report_to("all") == resolve_report_to(["all"]) == ["tensorboard", "trackio"]
    assert resolve_report_to("tensorboard") == ["tensorboard"]
    assert resolve_report_to(["wandb", "mlflow", "wandb"]) == ["wandb", "mlflow"]
    with pytest.raises(ValueError, match="unknown tracker 'tensorbored'.*tensorboard"):
        resolve_report_to(["tensorbored"])
    with pytest.raises(ValueError, match="'none' stands alone"):
        resolve_report_to(["none", "wandb"])


def test_every_transformers_integration_has_an_install_hint(monkeypatch):
    from transformers.integrations import integration_utils

    from rgsd import trackers

    assert set(integration_utils.INTEGRATION_TO_CALLBACK) <= set(trackers._INSTALL)
    for name, (check, install) in trackers._INSTALL.items():
        assert callable(getattr(integration_utils, check)), check
        monkeypatch.setattr(f"{UTILS}.{check}", lambda: False)
        with pytest.raises(ValueError, match=f"^report_to: {name} is not installed: {re.escape(install)}$"):
            check_report_to([name])


def test_none_and_all_from_flags_and_yaml(monkeypatch):
    from rgsd.cli import build_parser
    from rgsd.options import options

    monkeypatch.setattr(f"{UTILS}.get_available_reporting_integrations", lambda: [])
    for flag in ("none", "all"):
        args = build_parser().parse_args(["train", "--dataset_name", "x", "--report_to", flag])
        assert options(args, RGSDConfig).report_to == [flag]  # kept as given: "all" is resolved per run
        assert build_config(RGSDConfig, None, dict(dataset_name="x", report_to=flag)).report_to == [flag]


@pytest.mark.parametrize("command", ["train", "grpo"])
def test_missing_tracker_exits_2_with_one_line(monkeypatch, capsys, command):
    from rgsd.cli import main

    monkeypatch.setattr(f"{UTILS}.is_trackio_available", lambda: False)
    extra = ["--judge", "regex"] if command == "grpo" else []
    assert main([command, "--dataset_name", str(DEMO_TRAIN), "--report_to", "trackio", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trackio is not installed: pip install trackio" in err[0], err
    assert main([command, "--dataset_name", "x", "--report_to", "tensorbored", *extra]) == 2
    assert "--report-to: 'tensorbored' is not one of ['none', 'all', " in capsys.readouterr().err


# ---- TRL's names -------------------------------------------------------------------------------------------
def test_tracker_logs_use_trls_names():
    logs = tracker_logs({"step": 3, "loss": 0.5, "lr": 1e-4, "learning_rate": 1e-4, "grad_norm": None, "epoch": 0.5,
                         "mean_response_tokens": 7.0, "eos_rate": 0.25, "clipped_fraction": 0.1,
                         "clipped_entry_fraction": 0.1, "sharding": "none", "params_per_rank": [1, 2],
                         "signal_divergence_by_position": {"0-15": 0.2, "16-63": None}, "judge_calls": 0})
    assert logs == {"loss": 0.5, "learning_rate": 1e-4, "epoch": 0.5, "completions/mean_length": 7.0,
                    "completions/clipped_ratio": 0.75, "rgsd/clipped_entry_fraction": 0.1,
                    "rgsd/signal_divergence_by_position/0-15": 0.2, "rgsd/judge_calls": 0}


# ---- tiny runs ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("report_to", ["none", "all", "tensorboard"])
def test_rgsd_run_logs_trl_names_under_the_run_name(tmp_path, tiny_model_dir, tensorboard, monkeypatch, report_to):
    from rgsd.train.trainer import train

    # "all" = every installed tracker; here only TensorBoard, so a developer's W&B login is left alone
    monkeypatch.setattr(f"{UTILS}.get_available_reporting_integrations", lambda: ["tensorboard"])
    out = train(_cfg(tmp_path, tiny_model_dir, report_to=report_to, run_name="first-try"))
    line = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert line["loss"] == line["loss"] and line["learning_rate"] == line["lr"] and line["epoch"] > 0
    log = tensorboard(out)
    if report_to == "none":
        assert not log.folders and not (out / "tensorboard").exists()
        return
    assert log.folders == {out / "tensorboard" / "first-try"}
    for tag in ("train/loss", "train/learning_rate", "train/grad_norm", "train/epoch",
                "train/completions/mean_length", "train/rgsd/scored_tokens"):
        assert [step for step, _ in log.scalars[tag]] == [1], tag
    assert log.scalars["train/loss"][0][1] == pytest.approx(line["loss"], rel=1e-6)
    assert "loss" not in log.scalars and "lr" not in log.scalars  # only transformers' prefixed names
    assert {"args", "rgsd_config"} <= log.texts


def test_grpo_tensorboard_folder_is_the_run_name(tmp_path, tiny_model_dir, tensorboard):
    from test_grpo import G, small

    from rgsd.grpo.trainer import train_grpo

    out = train_grpo(small(tiny_model_dir, tmp_path / "grpo", max_steps=1, per_device_train_batch_size=G,
                           report_to=["tensorboard"], run_name="grpo-try"))
    log = tensorboard(out)
    assert log.folders == {out / "tensorboard" / "grpo-try"}
    assert [step for step, _ in log.scalars["train/loss"]] == [1] and "train/reward" in log.scalars
    assert "rgsd_config" in log.texts
