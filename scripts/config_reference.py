"""Regenerate docs/configuration.md from the config dataclasses: python scripts/config_reference.py."""

from __future__ import annotations

from pathlib import Path

from rgsd.options import config_markdown


def render() -> str:
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.train.config import RGSDConfig

    return (
        "# Configuration reference\n\n"
        "Generated from the config dataclasses by `python scripts/config_reference.py`; a test keeps it in sync.\n"
        "Every field is a YAML key of a recipe (`--config FILE`) and a flag that overrides it (`--max_steps 4` or\n"
        "`--max-steps 4`; no abbreviations). The names are TRL's and transformers' where the meaning is the same;\n"
        "the fields the two trainers share (`rgsd/trainer_args.py`) mean the same in both.\n\n"
        "Warm-up, one rule in both trainers: `warmup_steps` as in transformers 5 (an integer >= 1 = steps, a float\n"
        "in (0, 1) = a share of `max_steps`, rounded up); when it is 0, `warmup_ratio` is the share, rounded down.\n"
        "`lr_scheduler_type` is transformers' name and meaning: `constant` ignores the warm-up,\n"
        "`constant_with_warmup` does not (rgsd 0.1's `lr_scheduler: constant` warmed up, so it reads as\n"
        "`constant_with_warmup`). `bf16` is TRL's switch over `dtype` (true = bf16, false = fp32).\n\n"
        "Values are checked as the file is read: the type (a string field takes a string: quote `'17'`), the\n"
        "range given as *Allowed*, every float finite and every int within 64 bits; a key given twice is refused.\n"
        "A bad value exits 2 with one line naming it: `recipe.yaml:7: learning_rate: must be > 0, got -0.001`.\n\n"
        "## `rgsd train` (RGSDConfig)\n\n" + config_markdown(RGSDConfig) + "\n\n"
        "## `rgsd grpo` (GRPORunConfig)\n\n" + config_markdown(GRPORunConfig) + "\n"
    )


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    path.write_text(render())
    print(f"wrote {path}")
