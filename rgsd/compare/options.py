"""The options of ``rgsd compare``: its own fields, the training data, the evaluation data and the two judges.

The training data are :class:`rgsd.data.options.TrainDataArgs` (the fields of both runs), the evaluation data
:class:`rgsd.data.options.EvalDataArgs` under the role prefix ``eval`` (``--eval-dataset-name`` ...), the
judge :class:`rgsd.judges.options.JudgeOptions` (GRPO's training judge, the names and defaults of
``rgsd eval``), and the evaluation judge the same fields under ``eval`` (``--eval-judge-model`` ...), each
unset one being the training judge's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, NOT_EMPTY, SEED, OneOf
from rgsd.data.options import EvalDataArgs, TrainDataArgs
from rgsd.judges.options import JudgeKind, JudgeOptions
from rgsd.method.teacher_prompt import CONTROLS
from rgsd.options import ConfigError, arg, field_types, prefixed


@dataclass
class CompareArgs:
    """The comparison itself: where it writes, the runs (trained or read), and the evaluation's sampling."""

    DEPRECATED: ClassVar[dict[str, str]] = {
        "split": "dataset_train_split", "model": "model_name_or_path", "steps": "max_steps",
        "eval_data": "eval_dataset_name", "eval_split": "eval_dataset_test_split",
        "eval_config_name": "eval_dataset_config", "base_url": "judge_base_url", "api_key_env": "judge_api_key_env",
        "price_in": "judge_price_in", "price_out": "judge_price_out", "prices": "judge_prices",
        "eval_base_url": "eval_judge_base_url", "eval_api_key_env": "eval_judge_api_key_env"}

    out: str = arg("", "Output folder (runs, evaluations, compare.md/json, plots); required.")
    model_name_or_path: str = arg("smollm2-offline", "Base model (both methods start from it).", check=NOT_EMPTY)
    max_steps: int | None = arg(
        None, "Optimizer steps (both methods); required unless the runs are read.", check=AT_LEAST_ONE)
    seed: int = arg(0, "Seed of both runs and of the evaluation's sampling and bootstrap.", check=SEED)
    seeds: list[int] = arg(
        [], "Training seeds, pooled (e.g. 2,3,4): every run is trained once per seed and its gain is pooled over "
            "seeds and prompts (the interval resamples both). Empty: --seed alone.", check=SEED)
    control: list[str] = arg(
        [], "RGSD control runs, trained with the same seeds and data: neutral-system (the teacher's template, "
            "no criteria), shuffled (another prompt's criteria). Reported as RGSD minus each control.",
        check=OneOf(tuple(CONTROLS)))
    rgsd_config: str | None = arg(None, "RGSD recipe (default: RGSDConfig defaults).")
    grpo_config: str | None = arg(None, "GRPO recipe (default: GRPORunConfig defaults).")
    rgsd_set: list[str] = field(default_factory=list, metadata={
        "help": "FIELD=VALUE: override an RGSD config field (repeatable).", "action": "append",
        "metavar": "FIELD=VALUE"})
    grpo_set: list[str] = field(default_factory=list, metadata={
        "help": "FIELD=VALUE: override a GRPO config field (repeatable).", "action": "append",
        "metavar": "FIELD=VALUE"})
    rgsd_run: str | None = arg(None, "Read this finished RGSD run instead of training (with grpo_run).")
    grpo_run: str | None = arg(None, "Read this finished GRPO run instead of training (with rgsd_run).")
    max_new_tokens: int = arg(256, "Longest evaluation response in tokens.", check=AT_LEAST_ONE)
    temperature: float = arg(0.0, "Evaluation sampling temperature; 0 = greedy.", check=NON_NEGATIVE)
    samples: int = arg(1, "Responses per prompt (> 1 needs temperature > 0); the paired differences use the "
                          "per-prompt means, so a gain is not one draw per prompt.", check=AT_LEAST_ONE)
    batch_size: int = arg(8, "Prompts per generate() call in the evaluation.", check=AT_LEAST_ONE)

    def validate(self) -> None:
        if not self.out:
            raise ValueError("--out is required (the output folder)")
        if self.rgsd_run and (self.seeds or self.control):
            raise ValueError("--seeds and --control train runs: not with --rgsd-run/--grpo-run (finished runs)")
        if self.samples < 1 or (self.samples > 1 and self.temperature <= 0):
            raise ValueError(f"--samples {self.samples}: needs >= 1, and --temperature > 0 when > 1 "
                             "(greedy decoding gives the same response every time)")


@dataclass
class CompareJudge(JudgeOptions):
    """GRPO's training judge (and the evaluation judge's defaults)."""

    # unset: regex when training; with --grpo-run, the run's own training judge (see the command's description)
    judge: JudgeKind | None = arg(None, next(f.metadata["help"] for f in dataclasses.fields(JudgeOptions)
                                             if f.name == "judge"))

    def validate(self) -> None:
        if self.judge == "none":
            raise ValueError("judge none: the comparison needs a judge (regex or openai)")


EvalData = prefixed(EvalDataArgs, "eval")
EVAL_JUDGE_FIELDS = list(field_types(JudgeOptions))
# every eval judge option unset (None) = the training judge's; the same flags as every other judge role
EvalJudge = prefixed(JudgeOptions, "eval", **{name: None for name in EVAL_JUDGE_FIELDS})


@dataclass
class CompareOptions:
    """Everything ``rgsd compare`` needs; :func:`rgsd.compare.run.run_compare` takes it."""

    run: CompareArgs
    eval_data: EvalDataArgs
    data: TrainDataArgs = field(default_factory=TrainDataArgs)
    judge: CompareJudge = field(default_factory=CompareJudge)
    eval_judge: dict[str, Any] = field(default_factory=dict)  # JudgeOptions field -> value, the ones given

    def __post_init__(self) -> None:
        unknown = set(self.eval_judge) - set(EVAL_JUDGE_FIELDS)
        if unknown:
            raise ConfigError(f"eval judge: unknown judge options {sorted(unknown)}")
        if self.eval_judge.get("judge") == "none":
            raise ConfigError("--eval-judge none: the comparison needs an evaluation judge (regex or openai)")
        if not self.eval_data.dataset_name:
            raise ConfigError("--eval-dataset-name is required (the held-out evaluation data)")

    def train_data_values(self) -> dict[str, Any]:
        """The training data fields both runs get: the dataset, and every other field given a non-default value."""
        defaults = TrainDataArgs()
        return {f.name: getattr(self.data, f.name) for f in dataclasses.fields(TrainDataArgs)
                if f.name == "dataset_name" or getattr(self.data, f.name) != getattr(defaults, f.name)}

    def eval_judge_options(self, base: dict[str, Any] | None = None) -> JudgeOptions:
        """The evaluation judge: the training judge's options, then ``base`` (a run's judge), then the eval ones."""
        values = {name: getattr(self.judge, name) for name in field_types(JudgeOptions)}
        values.update(base or {})
        values.update(self.eval_judge)
        return JudgeOptions(**values)
