"""``rgsd eval`` (:mod:`rgsd.evaluate.eval_cli`), ``rgsd gap`` (:mod:`rgsd.evaluate.gap_cli`) and ``rgsd judge check``
(:mod:`rgsd.evaluate.judge_cli`).

Exit codes (also in ``rgsd eval --help``): 0 done; 2 bad input or configuration (including a judge that
rejects the key/URL/model mid-run: the results graded so far are written); 3 judge budget exhausted (partial
results written; rerun with a larger budget and the same cache to finish, paying each verdict once); 4 the
judge failed: every verdict failed, or the share of failed verdicts is above ``--judge-max-failure-rate``.
"""

from __future__ import annotations

import argparse

from rgsd.evaluate import eval_cli, gap_cli, judge_cli


def register(sub: argparse._SubParsersAction) -> None:
    eval_cli.register(sub)
    gap_cli.register(sub)
    judge_cli.register(sub)
