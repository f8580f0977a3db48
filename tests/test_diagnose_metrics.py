"""Pure statistics of ``rgsd diagnose``, each against a hand-computed value or an independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from rgsd.diagnose import metrics


def test_credited_follows_polarity_and_keeps_failures():
    assert metrics.credited("positive", True) is True
    assert metrics.credited("negative", True) is False  # a met pitfall earns nothing
    assert metrics.credited("negative", False) is True
    assert metrics.credited("positive", None) is None


def test_exploitation_rate_unanimous_and_majority_panel():
    w = {("p", "a"): 3.0, ("p", "b"): 1.0, ("p", "c"): 2.0, ("p", "d"): 4.0}
    prev = {("p", 0, "a"): False, ("p", 0, "b"): True, ("p", 0, "c"): False, ("p", 0, "d"): False}
    cur = {("p", 0, "a"): True, ("p", 0, "b"): True, ("p", 0, "c"): True, ("p", 0, "d"): False}
    # new: a (3), c (2); b was already credited, d is not credited now.
    panel = [
        {("p", 0, "a"): False, ("p", 0, "c"): False, ("p", 0, "b"): False},
        {("p", 0, "a"): False, ("p", 0, "c"): True, ("p", 0, "b"): False},
        {("p", 0, "a"): False, ("p", 0, "c"): False, ("p", 0, "b"): False},
    ]
    every = metrics.exploitation_rate(prev, cur, panel, w, "all")
    assert every.rate == pytest.approx(3 / 5) and every.new_weight == 5 and every.n_new == 2
    assert every.exploited == [("p", 0, "a")]
    most = metrics.exploitation_rate(prev, cur, panel, w, "majority")  # c: 2 of 3 reject
    assert most.rate == pytest.approx(1.0) and most.n_exploited == 2


def test_exploitation_rate_nothing_new_and_failures():
    w = {("p", "a"): 1.0, ("q", "b"): 1.0}
    prev = {("p", 0, "a"): True, ("q", 0, "b"): None}
    cur = {("p", 0, "a"): True, ("q", 0, "b"): True}
    res = metrics.exploitation_rate(prev, cur, [{("p", 0, "a"): False, ("q", 0, "b"): False}], w)
    # a was credited before (not new); b failed at t-1, so whether it is new is unknown: left out, counted.
    assert res.rate is None and res.new_weight == 0 and res.n_undecided == 1
    res = metrics.exploitation_rate({("p", 0, "a"): False}, {("p", 0, "a"): True}, [{("p", 0, "a"): None}], w)
    assert res.rate is None and res.n_undecided == 1  # a reference failure never counts as a rejection
    with pytest.raises(ValueError, match="panel rule"):
        metrics.rejected_by_panel([False], "some")


def test_slope_per_100_steps_matches_hand_fit_and_ci_covers_it():
    # two prompts; gaps per checkpoint (means): 0.1, 0.3, 0.2 at steps 0, 10, 20
    per_prompt = [{"x": 0.0, "y": 0.2}, {"x": 0.2, "y": 0.4}, {"x": 0.1, "y": 0.3}]
    res = metrics.slope_per_100_steps([0, 10, 20], per_prompt, n_boot=200)
    # OLS: xbar 10, slope = (-10 * 0.1 + 0 + 10 * 0.2) / 200 = 0.005 per step
    assert res["per_100_steps"] == pytest.approx(0.5)
    assert res["ci95"][0] <= 0.5 <= res["ci95"][1]
    assert metrics.slope_per_100_steps([0], [{"x": 1.0}])["per_100_steps"] is None


def test_bootstrap_mean_ci_clips_and_reproduces():
    a = metrics.bootstrap_mean_ci([0.2, 0.4, 0.9], seed=3)
    assert a["mean"] == pytest.approx(0.5) and a == metrics.bootstrap_mean_ci([0.2, 0.4, 0.9], seed=3)
    assert a["ci95"][0] <= 0.5 <= a["ci95"][1]
    assert metrics.bootstrap_mean_ci([1.4, 1.2], clip=(0, 1))["mean"] == 1.0
    assert metrics.bootstrap_mean_ci([])["mean"] is None


def test_pairwise_summary_with_order_flips_and_failures():
    outcomes = {
        ("p1", 0): ("checkpoint", "checkpoint"),  # 1.0
        ("p2", 0): ("checkpoint", "base"),  # position bias: 0.5
        ("p3", 0): ("tie", "base"),  # flip too: 0.25
        ("p4", 0): (None, "base"),  # failure: left out
    }
    s = metrics.pairwise_summary(outcomes, n_boot=100)
    assert s["win_rate"] == pytest.approx((1.0 + 0.5 + 0.25) / 3)
    assert s["position_bias_rate"] == pytest.approx(2 / 3) and s["n_failed_pairs"] == 1 and s["n_pairs"] == 3


def test_criterion_kind_and_presence_share():
    assert metrics.criterion_kind("Mentions a doctor", "positive") == "presence"
    assert metrics.criterion_kind("Does not mention dosage", "positive") == "absence"
    assert metrics.criterion_kind("Avoids jargon", "positive") == "absence"
    assert metrics.criterion_kind("Recommends bleach", "negative") == "absence"
    share = metrics.presence_weight_share([("Mentions x", "positive", 3), ("Avoids y", "positive", 1),
                                           ("Says z", "negative", 4)])
    assert share == pytest.approx(3 / 8)


def test_within_prompt_correlation_against_numpy():
    rows = [("a", 0.0, 10), ("a", 0.5, 20), ("a", 1.0, 25), ("b", 1.0, 100), ("b", 0.0, 90), ("c", 1.0, 5)]
    got = metrics.within_prompt_correlation(rows)
    xs, ys = [], []
    for pid in ("a", "b"):  # c has one response: no within-prompt information
        s = np.array([r[1] for r in rows if r[0] == pid])
        n = np.array([r[2] for r in rows if r[0] == pid], dtype=float)
        xs += list(s - s.mean())
        ys += list(n - n.mean())
    assert got["r"] == pytest.approx(np.corrcoef(xs, ys)[0, 1]) and got["n_prompts"] == 2
    assert metrics.within_prompt_correlation([("a", 1.0, 3), ("a", 1.0, 4), ("a", 1.0, 5)])["r"] is None


def test_exploitation_weights_are_per_prompt_when_criterion_ids_repeat():
    w = {("p", "c1"): 1.0, ("q", "c1"): 3.0}  # the same id in two prompts, different weights
    prev = {("p", 0, "c1"): False, ("q", 0, "c1"): False}
    cur = {("p", 0, "c1"): True, ("q", 0, "c1"): True}
    ref = [{("p", 0, "c1"): True, ("q", 0, "c1"): False}]
    assert metrics.exploitation_rate(prev, cur, ref, w).rate == pytest.approx(3 / 4)
