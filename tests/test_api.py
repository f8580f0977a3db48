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
