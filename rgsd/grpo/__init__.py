"""Judge-based GRPO baseline (TRL's GRPOTrainer with a rubric judge as reward), for comparing against RGSD."""

from pathlib import Path

from rgsd.grpo.config import GRPORunConfig

__all__ = ["GRPORunConfig", "train_grpo"]


def train_grpo(cfg: GRPORunConfig, resume: bool = False) -> Path:
    """Run GRPO and return the run folder; see :func:`rgsd.grpo.trainer.train_grpo`."""
    from rgsd.grpo import trainer  # lazy: keeps `import rgsd.grpo` light

    return trainer.train_grpo(cfg, resume=resume)
