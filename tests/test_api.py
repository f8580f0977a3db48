"""The notebook API: `import rgsd` is light, every exported name resolves, rgsd.train/rgsd.evaluate are callable."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_import_is_light_and_every_export_resolves():
    code = (
        "import sys, rgsd; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        "[getattr(rgsd, n) for n in rgsd.__all__]; print(len(rgsd.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) >= 20


def test_train_and_evaluate_are_callable_and_still_packages():
    import rgsd
    import rgsd.evaluate.run
    import rgsd.train.config

    assert callable(rgsd.train) and callable(rgsd.evaluate)
    assert rgsd.evaluate.run.evaluate.__name__ == "evaluate" and rgsd.train.config.RGSDConfig is rgsd.RGSDConfig
    examples = rgsd.load_examples("demo:heldout", limit=2).examples
    responses = ["Rest, fluids and paracetamol; see a doctor if it gets worse.", "I do not know."]
    result = rgsd.evaluate(examples, responses, rgsd.make_judge("regex"), bootstrap=10)
    # the same numbers as the scores computed by hand from the regex judge's verdicts
    for rec, ex, grade in zip(result.records, examples, result.grades):
        met = [v.met for v in grade.verdicts]
        assert rec["score_normalized"] == rgsd.normalized_score(ex.points, met)
    assert result.summary["n_examples"] == 2


def test_apps_are_imported_only_by_the_cli_and_the_trainers_share_fields_below_both():
    """Only rgsd.cli imports the demo; only rgsd.cli and the demo import compare; the trainer configs never
    import each other (their shared fields live in rgsd.trainer_args); no private name crosses a module."""
    import ast

    pkg = REPO / "rgsd"

    def imports(path):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                yield node.module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    yield a.name, []

    for path in pkg.rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for target, names in imports(path):
            if target.startswith("rgsd.demo") and not module.startswith("rgsd.demo"):
                assert module == "rgsd.cli", (module, target)
            if target.startswith("rgsd.compare") and not module.startswith("rgsd.compare"):
                assert module == "rgsd.cli" or module.startswith("rgsd.demo"), (module, target)
            if module.startswith(("rgsd.grpo.config", "rgsd.trainer_args", "rgsd.options", "rgsd.data.options")):
                assert target != "rgsd.train" and not target.startswith("rgsd.train."), (module, target)
            if module.startswith(("rgsd.compare", "rgsd.demo", "rgsd.options", "rgsd.trainer_args", "rgsd.train.config",
                                  "rgsd.grpo.config", "rgsd.data.options", "rgsd.data.cli")):
                assert not [n for n in names if n.startswith("_")], (module, target, names)


def test_evaluate_takes_what_generate_responses_returns():
    """Rollouts grade as their text, and their generated ids are the length statistic; anything else is refused."""
    import pytest

    import rgsd
    from rgsd.method.rollout import Rollout

    examples = rgsd.load_examples("demo:heldout", limit=2).examples
    texts = ["Rest, fluids and paracetamol; see a doctor if it gets worse.", "I do not know."]
    rollouts = [Rollout(prompt_ids=[1], response_ids=list(range(n)), text=t, finished=True)
                for n, t in zip((7, 3), texts)]
    judge = rgsd.make_judge("regex")
    by_text = rgsd.evaluate(examples, texts, judge, bootstrap=10)
    by_rollout = rgsd.evaluate(examples, rollouts, judge, bootstrap=10)
    assert [r["score_normalized"] for r in by_rollout.records] == [r["score_normalized"] for r in by_text.records]
    assert [r["response"] for r in by_rollout.records] == texts
    assert by_rollout.summary["mean_response_tokens"] == 5.0 and "model tokens" in by_rollout.summary["response_length_unit"]
    with pytest.raises(TypeError, match=r"responses\[1\] is a int"):
        rgsd.evaluate(examples, [texts[0], 3], judge)


def test_load_model_is_public_and_takes_a_path(tiny_model_dir):
    import rgsd

    model, tok = rgsd.load_model(tiny_model_dir)  # a Path, as `rgsd.train(cfg) / "final"` gives
    assert model.config.num_hidden_layers == 2 and tok.padding_side == "left"
