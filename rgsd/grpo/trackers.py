"""The trackers of a GRPO run: transformers' callbacks, which TRL's Trainer builds from ``report_to``.

Shared with ``rgsd train`` (:mod:`rgsd.trackers`): the whole rgsd config logged once at the start
(:class:`ConfigToTrackers`), W&B's project from the config (:func:`apply_project`), and TensorBoard's folder
``OUTPUT_DIR/tensorboard/RUN_NAME`` (:func:`point_tensorboard`; transformers' default ignores ``run_name``).
"""

from __future__ import annotations

from rgsd.trackers import ConfigToTrackers, apply_project, point_tensorboard, tensorboard_dir

__all__ = ["ConfigToTrackers", "apply_project", "point_tensorboard", "tensorboard_dir"]
