"""Send the whole rgsd config (judge, reward, data fields: what TRL's own args do not hold) to the trackers.

transformers' W&B and TensorBoard callbacks already log the ``GRPOConfig`` they see; this callback adds the
rgsd config under the key ``rgsd`` (W&B run config) or as the text ``rgsd_config`` (TensorBoard), once, at
the start of training. W&B takes the project from ``WANDB_PROJECT``, which :func:`apply_project` sets.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from transformers import TrainerCallback


def apply_project(project: str, report_to: list[str], explicit: bool) -> None:
    """Point W&B at ``project``: an explicit config value wins over ``$WANDB_PROJECT``, a default does not."""
    if "wandb" in report_to:
        if explicit:
            os.environ["WANDB_PROJECT"] = project
        else:
            os.environ.setdefault("WANDB_PROJECT", project)


class ConfigToTrackers(TrainerCallback):
    """Log ``config`` (a dataclass) to every active tracker when training begins (main process only)."""

    def __init__(self, config: Any) -> None:
        self.values = asdict(config)
        self.trainer: Any = None

    def attach(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.trainer is None:
            return
        import yaml
        from transformers.integrations import TensorBoardCallback, WandbCallback

        for cb in self.trainer.callback_handler.callbacks:
            if isinstance(cb, TensorBoardCallback) and getattr(cb, "tb_writer", None) is not None:
                cb.tb_writer.add_text("rgsd_config", "```\n" + yaml.safe_dump(self.values, sort_keys=False) + "```")
                cb.tb_writer.flush()
            elif isinstance(cb, WandbCallback):
                import wandb

                if wandb.run is not None:  # the run WandbCallback started
                    wandb.run.config.update({"rgsd": self.values}, allow_val_change=True)
