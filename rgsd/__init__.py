"""rgsd: Rubric-Guided Self-Distillation and the tools around it (data, judges, evaluation, baselines)."""

__version__ = "0.1.0"
