"""The package's layers hold: import-linter's contracts (pyproject.toml) and no private name crosses a module."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    # lint-imports reads [tool.importlinter] from pyproject.toml: layers, no cycles, grpo without train, the apps
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                           "sys.exit(lint_imports(no_cache=True))"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def private_imports(root: Path) -> list[str]:
    """``from rgsd.x import _name`` in a module other than ``rgsd.x`` itself: FILE:LINE: the import."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rgsd") and node.module != module:
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root.parent)}:{node.lineno}: from {node.module} import "
                                     f"{alias.name}")
    return found


def test_no_private_name_crosses_a_module(tmp_path):
    assert private_imports(REPO / "rgsd") == []
    # the check itself finds one when there is one
    pkg = tmp_path / "rgsd"
    pkg.mkdir()
    (pkg / "a.py").write_text("def _hidden():\n    pass\n")
    (pkg / "b.py").write_text("from rgsd.a import _hidden\n")
    assert private_imports(pkg) == ["rgsd/b.py:1: from rgsd.a import _hidden"]
