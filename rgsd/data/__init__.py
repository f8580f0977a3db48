"""Rubric data: the internal model (:mod:`.schema`), loaders for every supported format, and the lint."""

from rgsd.data.loaders import DataError, LoadIssue, LoadResult, load_examples, read_polarity_overrides
from rgsd.data.schema import Criterion, Example

__all__ = [
    "Criterion",
    "DataError",
    "Example",
    "LoadIssue",
    "LoadResult",
    "load_examples",
    "read_polarity_overrides",
]
