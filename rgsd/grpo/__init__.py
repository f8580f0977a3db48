"""Judge-based GRPO baseline (TRL's GRPOTrainer with a rubric judge as reward), for comparing against RGSD."""

from rgsd.grpo.config import GRPORunConfig

__all__ = ["GRPORunConfig", "train_grpo"]


def train_grpo(cfg: GRPORunConfig, resume: bool = False):  # noqa: ANN201 - lazy: keeps the import light
    """Run GRPO and return the run folder; see :func:`rgsd.grpo.trainer.train_grpo`."""
    from rgsd.grpo.trainer import train_grpo as _train

    return _train(cfg, resume=resume)
