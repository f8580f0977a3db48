"""Build hook: copy the repository's ``recipes/`` into the package as ``rgsd/_recipes/`` (see rgsd/recipes.py).

All other metadata lives in pyproject.toml. ``recipes/`` stays the only copy in the repository.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RECIPE_FILES = ("*.yaml", "README.md")


class BuildPyWithRecipes(build_py):
    def run(self) -> None:
        super().run()
        src = Path(__file__).resolve().parent / "recipes"
        dst = Path(self.build_lib) / "rgsd" / "_recipes"
        dst.mkdir(parents=True, exist_ok=True)
        for pattern in RECIPE_FILES:
            for f in sorted(src.glob(pattern)):
                shutil.copy2(f, dst / f.name)


setup(cmdclass={"build_py": BuildPyWithRecipes})
