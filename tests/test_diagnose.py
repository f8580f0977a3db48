"""``rgsd diagnose`` on scripted loopback HTTP judges: every number against a hand-computed value.

The responses are written by the test (tagged ``[[checkpoint/prompt]]``, criteria tagged ``{{K}}``) so the
server's rules decide each verdict; the judges are real :class:`OpenAIJudge` objects over HTTP with their
SQLite caches, and a second pass over the same caches sends no request.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diagnose_server import DiagnoseServer, Rules  # noqa: E402

from rgsd.data.schema import Criterion, Example  # noqa: E402
from rgsd.diagnose import metrics  # noqa: E402
from rgsd.diagnose.checkpoints import Checkpoint  # noqa: E402
from rgsd.diagnose.core import Judges, Options, diagnose  # noqa: E402
from rgsd.diagnose.responses import CheckpointResponses  # noqa: E402
from rgsd.judges import make_judge  # noqa: E402

T, F = True, False
EXAMPLES = [
    Example("p1", [{"role": "user", "content": "How do I sleep better?"}], [
        Criterion("K1", "Recommends a fixed wake time {{K1}}", 3.0),
        Criterion("K2", "Mentions daylight in the morning {{K2}}", 1.0),
        Criterion("K3", "Recommends alcohol as a sleep aid {{K3}}", 2.0, polarity="negative"),
    ]),
    Example("p2", [{"role": "user", "content": "How do I keep a plant alive?"}], [
        Criterion("K4", "Says to check soil moisture {{K4}}", 2.0),
        Criterion("K5", "Mentions light needs {{K5}}", 2.0),
    ]),
]
# Proxy verdicts (met) per checkpoint. Credits: base K5; step-10 K1 K3 K4 K5 (new: K1, K3, K4 = 7 points);
# step-20 K1 K2 K3 K4 (new: K2 = 1 point).
PROXY = {
    "base": {"K1": F, "K2": F, "K3": T, "K4": F, "K5": T},
    "step-10": {"K1": T, "K2": F, "K3": F, "K4": T, "K5": T},
    "step-20": {"K1": T, "K2": T, "K3": F, "K4": T, "K5": F},
}
# Where the reference panel (a, b, c) disagrees with the proxy; everywhere else it agrees.
REF = {
    ("step-10", "K1"): {"ref-a": F, "ref-b": F, "ref-c": F},  # rejected by all
    ("step-10", "K3"): {"ref-a": T, "ref-b": T, "ref-c": F},  # pitfall seen by 2 of 3: majority only
    ("step-10", "K4"): {"ref-a": F, "ref-b": F, "ref-c": F},
    ("step-20", "K2"): {"ref-a": F, "ref-b": F, "ref-c": F},
}
TOKENS = {"base": {"p1": 10, "p2": 10}, "step-10": {"p1": 20, "p2": 30}, "step-20": {"p1": 30, "p2": 20}}


def verdict(model: str, resp_tag: str, crit: str) -> bool:
    ckpt = resp_tag.split("/")[0]
    if model.startswith("ref") and (ckpt, crit) in REF:
        return REF[(ckpt, crit)][model]
    return PROXY[ckpt][crit]


def pairwise_rule(model: str, a: str, b: str) -> str:
    ckpt = a if not a.startswith("base") else b
    name = ckpt.split("/")[0] + "/" + ckpt.split("/")[1]
    ckpt_label = "A" if a == ckpt else "B"
    return {
        "step-10/p1": ckpt_label,  # prefers the checkpoint in both orders: 1.0
        "step-10/p2": "A",  # prefers whatever is shown first: 0.5 and a flip
        "step-20/p1": "B" if ckpt_label == "A" else "A",  # prefers the base: 0.0
        "step-20/p2": "tie",  # 0.5
    }[name]


class Classifier:
    def __init__(self) -> None:
        self.k2_calls = 0

    def __call__(self, model: str, resp: str, crit: str) -> str:
        if crit == "K2":
            self.k2_calls += 1
            return "not-a-category" if self.k2_calls == 1 else "imprecise_verification"  # one re-ask
        return {"K1": "partial_compound", "K4": "implicit_as_explicit"}[crit]


def responses(label: str, step: int, sig: dict | None) -> CheckpointResponses:
    short = label.split("/")[-1]
    keys = [("p1", 0), ("p2", 0)]
    return CheckpointResponses(
        checkpoint=Checkpoint(label, None if label == "base" else "run", step, f"/models/{short}"),
        keys=keys,
        texts=[f"[[{short}/{pid}]] an answer" for pid, _ in keys],
        tokens=[TOKENS[short][pid] for pid, _ in keys],
        sig=sig,
    )


def _judges(url: str, cache: Path) -> Judges:
    def j(model: str, role: str):
        return make_judge("openai", model, cache_path=cache / f"{role}.sqlite", base_url=url, concurrency=4,
                          backoff_base=0.01, max_retries=1)

    return Judges(j("proxy", "proxy"), [j(m, "reference") for m in ("ref-a", "ref-b", "ref-c")],
                  j("pw", "pairwise"), j("cls", "classifier"))


def _run(url: str, cache: Path, rule: str = "all") -> tuple[dict, Judges]:
    base = responses("base", 0, {"gap": -0.5, "source": "measured"})
    run = [responses("run/step-10", 10, {"gap": -0.3, "source": "metrics"}),
           responses("run/step-20", 20, {"gap": -0.4, "source": "metrics"})]
    judges = _judges(url, cache)
    try:
        return diagnose(EXAMPLES, base, {"run": run}, judges, Options(panel_rule=rule, n_boot=200)), judges
    finally:
        for jj in [judges.proxy, *judges.reference, judges.pairwise, judges.classifier]:
            jj.close()


def test_scripted_diagnostics_every_number(tmp_path):
    classifier = Classifier()
    with DiagnoseServer(Rules(verdict=verdict, pairwise=pairwise_rule, category=classifier)) as server:
        diag, judges = _run(server.url, tmp_path / "cache")
        first_count = server.count
        base, s10, s20 = diag["checkpoints"]

        # proxy normalized scores: p1 over 6 points, p2 over 4
        assert base["proxy_score"] == pytest.approx((0 / 6 + 2 / 4) / 2)
        assert s10["proxy_score"] == pytest.approx((5 / 6 + 4 / 4) / 2)
        assert s20["proxy_score"] == pytest.approx((6 / 6 + 2 / 4) / 2)
        # reference = panel mean per response; at step-10 judges a, b give p1 0/6, c gives 2/6 (pitfall avoided)
        assert s10["reference_score"] == pytest.approx(((0 + 0 + 2 / 6) / 3 + 2 / 4) / 2)
        assert s10["reference"]["per_judge"] == pytest.approx([0.25, 0.25, (2 / 6 + 0.5) / 2])
        assert s20["reference_score"] == pytest.approx((5 / 6 + 2 / 4) / 2)
        assert base["reference_score"] == pytest.approx(base["proxy_score"])
        # healthbench score of the proxy at step-20: p1 (3 + 1) / 4, p2 2 / 4
        assert s20["proxy"]["healthbench"]["mean"] == pytest.approx((1.0 + 0.5) / 2)

        # exploitation: step-10 new K1 (3), K3 (2), K4 (2); unanimously rejected K1, K4 -> 5/7
        assert base["exploitation_rate"] is None
        assert s10["exploitation_rate"] == pytest.approx(5 / 7)
        assert s10["exploitation"]["new_weight"] == 7 and s10["exploitation"]["since"] == "base"
        assert s20["exploitation_rate"] == pytest.approx(1.0)  # new: K2 only, rejected by all
        # p2 had nothing newly credited at step-20 (K5 was lost): it adds nothing to either side
        assert s20["exploitation"]["n_new"] == 1

        # gap slope: gaps 0, 11/12 - ref10, 0.75 - 2/3 at steps 0, 10, 20 -> OLS = (g20 - g0) / 20 per step
        g20 = 0.75 - (5 / 6 + 0.5) / 2
        slope = diag["runs"]["run"]["gap_slope"]
        assert slope["per_100_steps"] == pytest.approx(g20 / 20 * 100)
        assert s10["proxy_reference_gap"] == pytest.approx(11 / 12 - ((2 / 6) / 3 + 0.5) / 2)

        # pairwise: step-10 (1 + 0.5) / 2 with one flip in two pairs; step-20 (0 + 0.5) / 2, no flip
        assert s10["pairwise_win_rate"] == pytest.approx(0.75)
        assert s10["pairwise"]["position_bias_rate"] == pytest.approx(0.5)
        assert s20["pairwise_win_rate"] == pytest.approx(0.25)
        assert s20["pairwise"]["position_bias_rate"] == 0.0
        assert s10["pairwise"]["scale_deltas"] == {"conciseness": 0.0, "accuracy": 0.0, "helpfulness": 0.0}

        # taxonomy of the 3 exploited credits (K1, K4 at step-10; K2 at step-20), one reply re-asked
        tax = diag["taxonomy"]
        assert tax["counts"] == {"partial_compound": 1, "implicit_as_explicit": 1,
                                 "imprecise_verification": 1, "other": 0}
        assert tax["shares"]["partial_compound"] == pytest.approx(1 / 3) and tax["n_failures"] == 0
        assert judges.classifier.usage.reasks == 1 and judges.classifier.usage.calls == 4

        # stops: SIG argmax over the run's own metrics (base measured: different source), proxy, reference
        run = diag["runs"]["run"]
        assert run["recommended_stop"]["label"] == "run/step-10" and run["note"]
        assert run["proxy_pick"]["label"] == "run/step-10"
        assert run["reference_pick"]["label"] == "run/step-20"

        # length: presence weight share 8/10; within-prompt r against a brute-force computation
        lc = diag["length_correlation"]
        assert lc["presence_weight_share"] == pytest.approx(0.8)
        pres = {("p1", "base"): 0, ("p1", "step-10"): 3 / 4, ("p1", "step-20"): 1,
                ("p2", "base"): 0.5, ("p2", "step-10"): 1, ("p2", "step-20"): 0.5}
        rows = [(p, v, TOKENS[c][p]) for (p, c), v in pres.items()]
        assert lc["proxy"]["presence"]["r"] == pytest.approx(metrics.within_prompt_correlation(rows)["r"])
        import numpy as np

        x = [0 - 7 / 12, 3 / 4 - 7 / 12, 1 - 7 / 12, 0.5 - 2 / 3, 1 - 2 / 3, 0.5 - 2 / 3]
        y = [-10, 0, 10, -10, 10, 0]
        assert lc["proxy"]["presence"]["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])

        # request count: 3 checkpoints x 5 criteria x 4 rubric judges + 2 x 2 x 2 pairwise + 4 classifier
        assert first_count == 3 * 5 * 4 + 8 + 4

        # the same diagnostics again over the caches: identical numbers, zero requests
        again, judges2 = _run(server.url, tmp_path / "cache")
        assert server.count == first_count
        assert judges2.proxy.usage.calls == 0 and judges2.proxy.usage.cache_hits == 15
        assert again["checkpoints"] == diag["checkpoints"] and again["taxonomy"] == diag["taxonomy"]


def test_majority_panel_rule(tmp_path):
    with DiagnoseServer(Rules(verdict=verdict, pairwise=pairwise_rule, category=Classifier())) as server:
        diag, _ = _run(server.url, tmp_path / "cache", rule="majority")
    # K3 at step-10 is now rejected too (2 of 3): all 7 new points exploited
    assert diag["checkpoints"][1]["exploitation_rate"] == pytest.approx(1.0)
    assert diag["panel_rule"] == "majority"


def test_unreadable_pairwise_replies_are_reasked_counted_and_left_out(tmp_path):
    from rgsd.diagnose.pairwise import compare_to_base

    with DiagnoseServer(Rules(pairwise=lambda m, a, b: "I would say the first one")) as server:
        judge = make_judge("openai", "pw", base_url=server.url, max_reasks=1)
        try:
            res = compare_to_base(judge, {ex.id: ex for ex in EXAMPLES}, [("p1", 0)], ["x"], ["y"])
        finally:
            judge.close()
        assert server.count == 4  # two orders, each asked and re-asked once
    assert res["outcomes"] == {("p1", 0): (None, None)} and len(res["failures"]) == 2
    assert judge.usage.failures == 2 and judge.usage.reasks == 2
    assert metrics.pairwise_summary(res["outcomes"])["win_rate"] is None


def test_reference_panel_from_build_judge_shares_one_budget(tmp_path):
    from rgsd.diagnose.core import BudgetStop
    from rgsd.judges.options import JudgeOptions, build_judge

    with DiagnoseServer(Rules(verdict=verdict, pairwise=pairwise_rule, category=Classifier())) as server:
        opts = JudgeOptions(judge_model="ref-a,ref-b,ref-c", judge_base_url=server.url, judge_max_calls=20,
                            judge_concurrency=2, judge_max_retries=1)
        panel = build_judge(opts, tmp_path / "cache", cache_name="reference.sqlite")
        proxy = make_judge("openai", "proxy", cache_path=tmp_path / "cache" / "proxy.sqlite", base_url=server.url)
        base = responses("base", 0, None)
        run = [responses("run/step-10", 10, None), responses("run/step-20", 20, None)]
        try:
            with pytest.raises(BudgetStop):
                diagnose(EXAMPLES, base, {"run": run}, Judges(proxy, panel.members), Options(n_boot=50))
        finally:
            panel.close()
            proxy.close()
        # 3 checkpoints x 5 criteria x 3 members = 45 requests without a cap; the panel's cap is their sum
        assert sum(n for m, n in server.by_model.items() if m.startswith("ref")) == 20
        assert panel.usage.calls == 20
