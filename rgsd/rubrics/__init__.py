"""Rubric generation: an LLM writes a RaR-style rubric for each prompt, from its reference answer when present.

``rgsd rubrics generate`` (see :mod:`rgsd.rubrics.cli`) or :func:`rgsd.rubrics.generate.generate_rubrics`.
"""

from rgsd.rubrics.parse import DEFAULT_WEIGHTS, WeightMap, parse_weight_map

__all__ = ["DEFAULT_WEIGHTS", "WeightMap", "parse_weight_map"]
