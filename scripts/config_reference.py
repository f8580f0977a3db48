"""Regenerate docs/configuration.md from the config dataclasses: python scripts/config_reference.py."""

from __future__ import annotations

from pathlib import Path

from rgsd.config import config_markdown


def render() -> str:
    from rgsd.grpo.config import GRPORunConfig
    from rgsd.train.config import RGSDConfig

    return (
        "# Configuration reference\n\n"
        "Generated from the config dataclasses by `python scripts/config_reference.py`; a test keeps it in sync.\n"
        "Every field is a YAML key of a recipe and a `--field value` override on the command line.\n\n"
        "## `rgsd train` (RGSDConfig)\n\n" + config_markdown(RGSDConfig) + "\n\n"
        "## `rgsd grpo` (GRPORunConfig)\n\n" + config_markdown(GRPORunConfig) + "\n"
    )


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    path.write_text(render())
    print(f"wrote {path}")
