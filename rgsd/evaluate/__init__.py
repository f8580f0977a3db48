"""Evaluation: generate, grade with a judge, score, report; plus the conditioning and self-internalization gaps.

Public API (import from the submodules to keep ``import rgsd.evaluate`` light):
``rgsd.evaluate.run``: :func:`evaluate`, :func:`evaluate_async`, :func:`generate_responses`, ``EvalResult``;
``rgsd.evaluate.gap``: :func:`self_internalization_gap`, :func:`conditioning_gap`, :func:`paired_difference`;
``rgsd.evaluate.report``: :func:`write_report`.
"""
