"""Matching the two runs of a comparison: the fields they share, GRPO's batch from RGSD's, the judges' identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rgsd.compare.options import CompareOptions
from rgsd.options import build, field_values

# Fields both runs must share so that the comparison is step for step (GRPO takes RGSD's values): RGSD name
# -> GRPO name. The prompts per step are matched too, by grpo_matched(): RGSD's per_device_train_batch_size
# counts prompts, TRL's counts completions.
MATCHED = {"dataset_name": "dataset_name", "format": "format", "polarity": "polarity",
           "max_examples": "max_examples", "model_name_or_path": "model_name_or_path", "max_steps": "max_steps",
           "seed": "seed", "max_new_tokens": "max_completion_length", "max_prompt_tokens": "max_prompt_tokens",
           "temperature": "temperature"}
OLD_NAMES = {"dataset_name": "data", "model_name_or_path": "model", "judge_base_url": "base_url"}  # rgsd 0.1 runs


def saved(config: dict[str, Any], name: str) -> Any:
    """A field of a saved run config, also when the run was written under the field's old name."""
    return config.get(name, config.get(OLD_NAMES.get(name, name)))


def prompts_per_step(config: dict[str, Any]) -> int | None:
    """Prompts per optimizer step (per process) of a saved RGSD or GRPO run config."""
    if "per_device_train_batch_size" in config:  # GRPO counts completions; RGSD (no num_generations) prompts
        g = config.get("num_generations") or 1
        return config["per_device_train_batch_size"] * config.get("gradient_accumulation_steps", 1) // g
    if "per_device_batch_size" in config:  # an RGSD run of rgsd 0.1
        return config["per_device_batch_size"] * config.get("gradient_accumulation_steps", 1)
    return None


def grpo_matched(rgsd_cfg: Any, num_generations: int, micro: int | None = None) -> dict[str, Any]:
    """GRPO field values that match ``rgsd_cfg`` step for step (same prompts per step, steps, lengths, ...).

    ``micro`` (GRPO's per_device_train_batch_size, in completions) is kept when it divides the step's
    completions, so a GRPO recipe's memory-sized micro-batch survives the matching.
    """
    values = {g: getattr(rgsd_cfg, r) for r, g in MATCHED.items()}
    prompts = rgsd_cfg.per_device_train_batch_size
    completions = prompts * rgsd_cfg.gradient_accumulation_steps * num_generations
    if micro and completions % micro == 0:
        values.update(per_device_train_batch_size=micro, gradient_accumulation_steps=completions // micro)
    else:
        values.update(per_device_train_batch_size=prompts * num_generations,
                      gradient_accumulation_steps=rgsd_cfg.gradient_accumulation_steps)
    return values


def judge_spec(kind: str, model: str | None, base_url: str | None, mode: str | None) -> dict[str, Any]:
    """A judge description (what the table shows and what sameness is decided on)."""
    if kind == "regex":
        return {"judge": "regex", "model": None, "base_url": None, "mode": None}
    return {"judge": kind, "model": model, "base_url": base_url, "mode": mode}


def same_judge(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same grader (kind, model and endpoint); the request mode does not change whose blind spots they are."""
    return (a["judge"], a["model"], a["base_url"]) == (b["judge"], b["model"], b["base_url"])


def grpo_judge_values(opts: CompareOptions) -> dict[str, Any]:
    """GRPO's training judge: kind, model, endpoint, key and mode always; any other judge option given."""
    from rgsd.judges.options import JudgeOptions

    judge, defaults = opts.judge, JudgeOptions()
    values = {"judge": judge.judge or "regex", "judge_model": judge.judge_model,
              "judge_base_url": judge.judge_base_url, "judge_api_key_env": judge.judge_api_key_env,
              "judge_mode": judge.judge_mode}
    for name in ("judge_timeout", "judge_max_retries", "judge_max_reasks", "judge_temperature", "judge_max_tokens",
                 "judge_max_calls", "judge_max_tokens_budget", "judge_cache", "judge_panel_rule", "judge_structured",
                 "judge_max_consecutive_failures"):
        if getattr(judge, name) != getattr(defaults, name):
            values[name] = getattr(judge, name)
    return values


def plan_runs(opts: CompareOptions, out: Path) -> tuple[Any, Any, list[str]]:
    """The RGSD and GRPO configs with the matched fields forced equal; returns them and what was changed."""
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.train.config import RGSDConfig

    run = opts.run
    common = {**opts.train_data_values(), "model_name_or_path": run.model_name_or_path, "max_steps": run.max_steps,
              "seed": run.seed}
    rgsd_set, grpo_set = field_values(run.rgsd_set, "--rgsd-set"), field_values(run.grpo_set, "--grpo-set")
    # unknown fields (a typo in --*-set) are errors
    rgsd_cfg = build(RGSDConfig, run.rgsd_config, {**rgsd_set, **common, "output_dir": str(out / "rgsd")})
    grpo_values = {**grpo_set, **grpo_judge_values(opts), **common, "output_dir": str(out / "grpo")}
    grpo_cfg = build(GRPORunConfig, run.grpo_config, grpo_values)
    changed = []
    for name, want in grpo_matched(rgsd_cfg, grpo_cfg.num_generations, grpo_cfg.per_device_train_batch_size).items():
        if getattr(grpo_cfg, name) != want:
            if name not in common and (run.grpo_config or name in grpo_set):  # the user asked otherwise
                changed.append(f"{name}: {getattr(grpo_cfg, name)!r} -> {want!r}")
            setattr(grpo_cfg, name, want)
    grpo_cfg.validate()
    return rgsd_cfg, grpo_cfg, changed


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A finished run folder: its config (as a dict), cost record and final model path."""
    import yaml

    from rgsd.costs import CostRecord

    run = Path(run_dir)
    for need in ("config.yaml", "costs.json", "final"):
        if not (run / need).exists():
            raise FileNotFoundError(f"{run}: not a finished run (missing {need})")
    return {"dir": str(run), "config": yaml.safe_load((run / "config.yaml").read_text()) or {},
            "cost": CostRecord.load(run / "costs.json"), "final": str(run / "final")}
