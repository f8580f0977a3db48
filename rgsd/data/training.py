"""The training examples of a run, read the same way by ``rgsd train`` and ``rgsd grpo``."""

from __future__ import annotations

from rgsd.data.options import TrainDataArgs
from rgsd.data.schema import Example

__all__ = ["load_training_examples"]


def load_training_examples(cfg: TrainDataArgs) -> list[Example]:
    """Examples from a trainer config's data fields (:class:`rgsd.data.options.TrainDataArgs`); ids must be unique."""
    from rgsd.data.loaders import load_examples, require_unique_ids

    examples = require_unique_ids(load_examples(cfg.dataset_name, **cfg.source_kwargs())).examples
    return examples[: cfg.max_examples] if cfg.max_examples else examples
