"""The training examples of a run, read the same way by ``rgsd train`` and ``rgsd grpo``."""

from __future__ import annotations

from typing import Any

from rgsd.data.schema import Example

__all__ = ["load_training_examples"]


def load_training_examples(cfg: Any) -> list[Example]:
    """Examples from a trainer config's data fields (``data``, ``format``, ``polarity``, ``max_examples`` and the
    source fields of :func:`rgsd.data.source_args.config_source_kwargs`); ids must be unique."""
    from rgsd.data.loaders import load_examples, require_unique_ids
    from rgsd.data.source_args import config_source_kwargs

    examples = require_unique_ids(load_examples(cfg.data, format=cfg.format, polarity=cfg.polarity,
                                                 **config_source_kwargs(cfg))).examples
    return examples[: cfg.max_examples] if cfg.max_examples else examples
