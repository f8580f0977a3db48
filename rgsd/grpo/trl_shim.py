"""The one place rgsd relies on TRL internals; written against trl 1.16.0.

1. Generation time. TRL has no public hook that reports how long a step spent generating (its profiling
   contexts only send timings to W&B/MLflow/Trackio), so :func:`timed_grpo_trainer_class` wraps the private
   ``GRPOTrainer._generate(self, prompts)``.
2. Unscorable completions. rgsd's reward returns ``None`` for a completion the judge could not grade. TRL
   documents ``None`` as "this reward function is excluded for that sample"; what happens when every reward
   function returns ``None`` (the completion is left out of its group's nan-mean/nan-std baseline and its
   advantage set to 0, so a judge failure neither rewards nor punishes) lives inside the private
   ``GRPOTrainer._generate_and_score_completions``.

:func:`private_api_problems` checks both; ``tests/test_grpo.py`` fails on any problem it reports, so a TRL
upgrade that changes them is caught before a run silently measures or rewards the wrong thing.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

__all__ = ["TRL_VERSION", "private_api_problems", "require_compatible_trl", "timed_grpo_trainer_class"]

TRL_VERSION = "1.16.0"  # the version this shim was written and checked against


def timed_grpo_trainer_class() -> type:
    """``trl.GRPOTrainer`` with its generation wall time added up in ``generation_time`` (seconds)."""
    from trl import GRPOTrainer

    class TimedGRPOTrainer(GRPOTrainer):
        generation_time = 0.0

        def _generate(self, prompts: list) -> Any:  # noqa: D401 - TRL's private hook, see the module docstring
            t0 = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                self.generation_time += time.perf_counter() - t0

    return TimedGRPOTrainer


def private_api_problems() -> list[str]:
    """What no longer matches the TRL internals this module relies on (empty = all as written against)."""
    from trl import GRPOTrainer

    problems = []
    generate = getattr(GRPOTrainer, "_generate", None)
    if generate is None:
        problems.append("GRPOTrainer._generate is gone: generation time cannot be measured")
    elif list(inspect.signature(generate).parameters) != ["self", "prompts"]:
        problems.append(f"GRPOTrainer._generate{inspect.signature(generate)} is not (self, prompts)")
    score = getattr(GRPOTrainer, "_generate_and_score_completions", None)
    if score is None:
        problems.append("GRPOTrainer._generate_and_score_completions is gone")
    else:
        src = inspect.getsource(score)
        for needle, meaning in (
            ("self._generate(", "generation goes through _generate"),
            ("unscorable_mask = torch.isnan(rewards_per_func).all(dim=1)", "all-None rewards mark a completion unscorable"),
            ("torch.nanmean", "the group baseline ignores unscorable completions"),
            ("advantages = torch.nan_to_num(advantages, nan=0.0)", "an unscorable completion gets advantage 0"),
        ):
            if needle not in src:
                problems.append(f"_generate_and_score_completions no longer shows that {meaning} ({needle!r})")
    calc = getattr(GRPOTrainer, "_calculate_rewards", None)
    if calc is None or "torch.nan" not in inspect.getsource(calc):
        problems.append("GRPOTrainer._calculate_rewards no longer turns a None reward into NaN")
    return problems


def require_compatible_trl() -> None:
    """Before a GRPO run: another TRL than :data:`TRL_VERSION` is checked; changed internals stop the run.

    rgsd allows any trl 1.x (pyproject.toml); what it cannot allow is measuring or rewarding the wrong thing,
    so a release whose internals differ is refused with one line (exit 2) instead of run.
    """
    import trl

    from rgsd.checks import ConfigError

    if trl.__version__ == TRL_VERSION:
        return
    problems = private_api_problems()
    if problems:
        raise ConfigError(f"trl {trl.__version__}: the GRPO baseline relies on TRL internals written against "
                          f"trl {TRL_VERSION}, and they changed ({'; '.join(problems)}); pip install trl=={TRL_VERSION}")
    logging.getLogger(__name__).warning("trl %s: the TRL internals the GRPO baseline uses (written against %s) "
                                        "check out; run tests/test_grpo.py to be sure", trl.__version__, TRL_VERSION)
