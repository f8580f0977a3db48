"""Experiment trackers (``report_to``) for both trainers, through transformers' integration callbacks.

``rgsd grpo`` hands ``report_to`` to TRL, whose Trainer builds transformers' callbacks; ``rgsd train`` runs
its own loop, so :class:`Trackers` drives the same callbacks (``on_train_begin``/``on_log``/``on_train_end``
with a minimal ``TrainingArguments``). Why these rather than ``accelerate.tracking``: ``report_to`` is a
TrainingArguments field, so the same callbacks give the same names (``all``, ``none``, every integration
transformers lists), the same set-up from the same environment variables (``WANDB_PROJECT``...), and the same
``train/`` prefix on every key (``rewrite_logs``) as a TRL run, with no tracker code of ours; Accelerate's
trackers support another set (no neptune, codecarbon, azure_ml...) and log keys as given.

TensorBoard writes to ``OUTPUT_DIR/tensorboard/RUN_NAME`` in both trainers (transformers' own default is a
date-and-host folder that ignores ``run_name``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

__all__ = ["TRACKERS", "ConfigToTrackers", "Trackers", "apply_project", "check_report_to", "log_config",
           "point_tensorboard", "resolve_report_to", "tensorboard_dir"]

# integration -> (transformers' availability check, what to install); names are transformers' INTEGRATION_TO_CALLBACK
_INSTALL = {
    "azure_ml": ("is_azureml_available", "pip install azureml-core"),
    "clearml": ("is_clearml_available", "pip install clearml"),
    "codecarbon": ("is_codecarbon_available", "pip install codecarbon"),
    "comet_ml": ("is_comet_available", "pip install comet-ml"),
    "dagshub": ("is_dagshub_available", "pip install dagshub mlflow"),
    "dvclive": ("is_dvclive_available", "pip install dvclive"),
    "flyte": ("is_flytekit_available", "pip install flytekit"),
    "kubeflow": ("is_kubeflow_available", "run inside a Kubeflow TrainJob (KUBEFLOW_TRAINER_SERVER_URL is unset)"),
    "mlflow": ("is_mlflow_available", "pip install mlflow (and unset DISABLE_MLFLOW_INTEGRATION)"),
    "neptune": ("is_neptune_available", "pip install neptune"),
    "swanlab": ("is_swanlab_available", "pip install swanlab"),
    "tensorboard": ("is_tensorboard_available", "pip install tensorboard"),
    "trackio": ("is_trackio_available", "pip install trackio"),
    "wandb": ("is_wandb_available", "pip install wandb"),
}


TRACKERS: tuple[str, ...] = ("none", "all", *sorted(_INSTALL))  # what report_to may name


def _integrations() -> Any:
    return importlib.import_module("transformers.integrations.integration_utils")


def resolve_report_to(report_to: str | list[str] | None) -> list[str]:
    """The integrations ``report_to`` names, as TrainingArguments reads it: ``none``/None = none, ``all`` =
    every installed one, else the names (a string or a list). Unknown names raise ``ValueError``."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if names in (["none"], []):
        return []
    if names == ["all"]:
        return list(_integrations().get_available_reporting_integrations())
    supported = list(_integrations().INTEGRATION_TO_CALLBACK)
    for name in names:
        if name in ("none", "all"):
            raise ValueError(f"report_to: {name!r} stands alone (got {names})")
        if name not in supported:
            raise ValueError(f"report_to: unknown tracker {name!r}; supported: none, all, {', '.join(supported)}")
    return list(dict.fromkeys(names))


def check_report_to(report_to: str | list[str] | None) -> list[str]:
    """:func:`resolve_report_to`, and every named tracker installed; else one ``ValueError`` line saying
    what to install (checked before any model loads)."""
    names = resolve_report_to(report_to)
    utils = _integrations()
    for name in names:
        check, install = _INSTALL.get(name, (f"is_{name}_available", f"pip install {name}"))
        available = getattr(utils, check, None)
        if available is not None and not available():
            raise ValueError(f"report_to: {name} is not installed: {install}")
    return names


def tensorboard_dir(output_dir: str | Path, run_name: str) -> Path:
    """Where TensorBoard's event files go: one folder per run name, so runs sit side by side."""
    return Path(output_dir) / "tensorboard" / run_name


def point_tensorboard(callbacks: list[Any], logdir: Path) -> None:
    """Send transformers' TensorBoard callback(s) to ``logdir`` (``TENSORBOARD_LOGGING_DIR`` still wins)."""
    from transformers.integrations import TensorBoardCallback

    for cb in callbacks:
        if isinstance(cb, TensorBoardCallback) and not os.environ.get("TENSORBOARD_LOGGING_DIR"):
            cb.logging_dir = str(logdir)


def apply_project(project: str, report_to: list[str], explicit: bool) -> None:
    """Point W&B at ``project``: an explicit config value wins over ``$WANDB_PROJECT``, a default does not."""
    if "wandb" in report_to:
        if explicit:
            os.environ["WANDB_PROJECT"] = project
        else:
            os.environ.setdefault("WANDB_PROJECT", project)


def log_config(values: dict[str, Any], callbacks: list[Any]) -> None:
    """The whole rgsd config (what TrainingArguments does not hold) to the started trackers: TensorBoard text
    ``rgsd_config``, W&B run config key ``rgsd``."""
    import yaml
    from transformers.integrations import TensorBoardCallback, WandbCallback

    for cb in callbacks:
        if isinstance(cb, TensorBoardCallback) and getattr(cb, "tb_writer", None) is not None:
            cb.tb_writer.add_text("rgsd_config", "```\n" + yaml.safe_dump(values, sort_keys=False) + "```")
            cb.tb_writer.flush()
        elif isinstance(cb, WandbCallback):
            import wandb

            if wandb.run is not None:  # the run WandbCallback started
                wandb.run.config.update({"rgsd": values}, allow_val_change=True)


class ConfigToTrackers(TrainerCallback):
    """A Trainer callback: :func:`log_config` of ``config`` (a dataclass) when training begins (main process)."""

    def __init__(self, config: Any) -> None:
        self.values = asdict(config)
        self.trainer: Any = None

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.trainer is not None:
            log_config(self.values, self.trainer.callback_handler.callbacks)


class Trackers:
    """transformers' reporting callbacks, driven by a training loop that is not a ``Trainer`` (main process).

    ``training_args`` are the ``TrainingArguments`` fields the loop shares with transformers (learning rate,
    steps, seed...): the trackers record them as a Trainer's would; ``config`` is the whole rgsd config.
    """

    def __init__(self, report_to: list[str], output_dir: str, run_name: str, project: str,
                 config: dict[str, Any], training_args: dict[str, Any], model: Any = None) -> None:
        from transformers import TrainerControl, TrainerState, TrainingArguments
        from transformers.integrations import get_reporting_integration_callbacks

        names = check_report_to(report_to)
        self.callbacks = [cls() for cls in get_reporting_integration_callbacks(names)]
        self.config, self.model = config, model
        if not self.callbacks:
            return
        self.args = TrainingArguments(output_dir=output_dir, report_to=names, run_name=run_name, project=project,
                                      logging_steps=1, save_strategy="no", **training_args)
        self.state = TrainerState(max_steps=self.args.max_steps, logging_steps=1, is_local_process_zero=True,
                                  is_world_process_zero=True)
        self.control = TrainerControl()
        point_tensorboard(self.callbacks, tensorboard_dir(output_dir, run_name))

    def _each(self, event: str, **kw: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self.args, self.state, self.control, model=self.model, **kw)

    def begin(self, step: int) -> None:
        """Start every tracker (a resumed run starts at its checkpoint's step)."""
        if self.callbacks:
            self.state.global_step = step
            self._each("on_train_begin")
            log_config(self.config, self.callbacks)

    def log(self, logs: dict[str, float], step: int, epoch: float | None = None) -> None:
        """One step's scalars, in transformers' names (the callbacks add the ``train/`` prefix)."""
        if self.callbacks:
            self.state.global_step, self.state.epoch = step, epoch
            self._each("on_log", logs=dict(logs))

    def end(self) -> None:
        if self.callbacks:
            self._each("on_train_end")
