"""rgsd: Rubric-Guided Self-Distillation and the tools around it (data, judges, evaluation, baselines).

The public API, for notebooks and scripts (every name is imported on first use, so ``import rgsd`` stays
fast and never pulls in torch)::

    import rgsd
    data = rgsd.load_examples("demo:train").examples
    cfg = rgsd.build_config(rgsd.RGSDConfig, rgsd.recipe_path("rgsd-tiny-cpu.yaml"))
    run_dir = rgsd.train(cfg)                    # or rgsd.train_grpo(rgsd.GRPORunConfig(...))
    model, tokenizer = rgsd.load_model(run_dir / "final")
    responses = rgsd.generate_responses(model, tokenizer, data)
    judge = rgsd.make_judge("regex")
    result = rgsd.evaluate(data, responses, judge)   # rgsd.evaluate_async inside a running event loop

``rgsd.train`` and ``rgsd.evaluate`` are also the names of subpackages (``rgsd.train.config``,
``rgsd.evaluate.run``, ...): both stay importable as before, and calling them runs the function.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    # data
    "load_examples": ("rgsd.data.loaders", "load_examples"),
    "Example": ("rgsd.data.schema", "Example"),
    "Criterion": ("rgsd.data.schema", "Criterion"),
    "DataError": ("rgsd.data.loaders", "DataError"),
    "lint_file": ("rgsd.data.lint", "lint_file"),
    # configs and recipes
    "RGSDConfig": ("rgsd.train.config", "RGSDConfig"),
    "GRPORunConfig": ("rgsd.grpo.config", "GRPORunConfig"),
    "build_config": ("rgsd.options", "build"),  # a config dataclass from a YAML file plus field overrides
    "recipe_path": ("rgsd.recipes", "path"),
    # models
    "load_model": ("rgsd.models", "load_model"),  # (model, tokenizer) from a hub name, a folder or a run's final/
    # training
    "train_grpo": ("rgsd.grpo", "train_grpo"),
    # judges
    "make_judge": ("rgsd.judges", "make_judge"),
    # evaluation
    "evaluate_async": ("rgsd.evaluate.run", "evaluate_async"),
    "generate_responses": ("rgsd.evaluate.run", "generate_responses"),
    "self_internalization_gap": ("rgsd.evaluate.gap", "self_internalization_gap"),
    "conditioning_gap": ("rgsd.evaluate.gap", "conditioning_gap"),
    # scores (pure functions of (points, met))
    "healthbench_score": ("rgsd.scoring", "healthbench_score"),
    "normalized_score": ("rgsd.scoring", "normalized_score"),
    "rar_explicit_score": ("rgsd.scoring", "rar_explicit_score"),
    "strict_completion": ("rgsd.scoring", "strict_completion"),
    "bootstrap_std": ("rgsd.scoring", "bootstrap_std"),
    # rubric generation
    "generate_rubrics": ("rgsd.rubrics.generate", "generate_rubrics"),
}
# Subpackages that are also functions of the API: the package object itself becomes callable.
_CALLABLE_PACKAGES: dict[str, tuple[str, str]] = {
    "train": ("rgsd.train.trainer", "train"),
    "evaluate": ("rgsd.evaluate.run", "evaluate"),
}
__all__ = sorted([*_EXPORTS, *_CALLABLE_PACKAGES, "__version__"])


class _CallablePackage(types.ModuleType):
    """A package whose call runs one function (imported on the first call)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module, name = _CALLABLE_PACKAGES[self.__name__.rsplit(".", 1)[1]]
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


def _make_callable(name: str) -> None:
    # The two package __init__ files hold no imports, so this costs next to nothing; it is done eagerly
    # because a later `import rgsd.evaluate.run` binds the package object itself as `rgsd.evaluate`.
    importlib.import_module(f"rgsd.{name}").__class__ = _CallablePackage


for _name in _CALLABLE_PACKAGES:
    _make_callable(_name)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value  # cache: later lookups skip this hook
        return value
    raise AttributeError(f"module 'rgsd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
