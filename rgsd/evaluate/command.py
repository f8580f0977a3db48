"""What the judging commands share: exit codes, generation options, data and model loading, judge checks.

``rgsd eval`` and ``rgsd gap`` use all of it; ``rgsd diagnose`` and ``rgsd rubrics generate`` use the judge
checks (:func:`require_kind`, :func:`reject_unused`) so that every command says the same about a judge option
it cannot use.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from rgsd.checks import AT_LEAST_ONE, NON_NEGATIVE, SEED
from rgsd.data.options import EvalDataArgs
from rgsd.judges.options import JudgeOptions
from rgsd.method.teacher_prompt import PLACEMENTS
from rgsd.options import add_command, arg

EXIT_BAD_INPUT, EXIT_BUDGET, EXIT_JUDGE_FAILED = 2, 3, 4
EXIT_CODES_HELP = (
    "exit codes: 0 done; 2 bad input or configuration (also a judge rejecting the key, URL or model mid-run: "
    "results graded so far are written); 3 judge budget exhausted (partial results written; rerun with a "
    "larger budget and the same --judge-cache); 4 judge failed (every verdict failed, or more than "
    "--judge-max-failure-rate of them, or, with --canaries, a canary's false-positive rate above --max-canary-rate: "
    "nothing generated or graded)"
)

Placement = Literal[PLACEMENTS]  # type: ignore[valid-type]  # where the rubric goes in the teacher prompt


@dataclass
class GenerationArgs:
    """Where results go and how the model generates (``eval`` and ``gap``)."""

    out: str = arg("", "Output folder (required).")
    max_new_tokens: int = arg(256, "Longest generated response in tokens.", check=AT_LEAST_ONE)
    temperature: float = arg(0.0, "Sampling temperature of the model; 0 = greedy (default).", check=NON_NEGATIVE)
    batch_size: int = arg(8, "Generation batch size.", check=AT_LEAST_ONE)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] | None = arg(
        None, "Model dtype (default: bfloat16 on CUDA, float32 on CPU).")
    device: str | None = arg(None, "Model device (default: cuda if available, else cpu).")
    seed: int = arg(0, "Random seed.", check=SEED)


def add_judging_command(sub: argparse._SubParsersAction, name: str, args: type,
                        run: Callable[[argparse.Namespace], int], help: str, description: str,  # noqa: A002
                        extra: tuple[type, ...] = ()) -> None:
    """Register ``rgsd NAME`` (``eval``, ``gap``): the data, ``args`` (and ``extra``), generation and judge flags,
    the exit codes."""
    add_command(sub, name, [EvalDataArgs, args, *extra, GenerationArgs, JudgeOptions], run, help=help,
                description=description, epilog=EXIT_CODES_HELP)


# ---- judge options a command cannot use ----------------------------------------------------------------------
def require_kind(opts: JudgeOptions, allowed: tuple[str, ...], command: str, prefix: str = "") -> None:
    """``ValueError`` (exit 2) when ``opts.judge`` is a kind ``command`` cannot use."""
    if opts.judge not in allowed:
        raise ValueError(f"--{prefix}judge {opts.judge}: {command} needs {' or '.join(allowed)}")


def reject_unused(opts: JudgeOptions, names: tuple[str, ...], command: str, prefix: str = "") -> None:
    """``ValueError`` (exit 2) for a judge option set away from its default that ``command`` would ignore."""
    defaults = {f.name: f.default for f in fields(JudgeOptions)}
    for name in names:
        if getattr(opts, name) != defaults[name]:
            raise ValueError(f"--{prefix}{name.replace('_', '-')} is not used by {command}")


def require_out(out: str, files: tuple[str, ...] = ()) -> Path:
    """The output folder, created and checked writable before anything is generated or paid for.

    ``files``: what the command will write there; one that exists as a folder is refused now, not after
    every verdict was paid. The field has no usable default, so an empty one is refused.
    """
    if not out:
        raise ValueError("--out is required (the output folder)")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    for name in files:
        if (path / name).is_dir():
            raise ValueError(f"--out {out}: {name} is a folder; it must be a file (or absent)")
    return path


def write_failed(err: OSError, out: Path) -> int:
    """The message and exit code when results could not be written after grading (the cache keeps the verdicts)."""
    print(f"error: could not write the results to {out}: {err.strerror or err} ({err.filename2 or err.filename or out}). The "
          "verdicts paid for are in the judge cache: rerun with the same --judge-cache (no call is paid again).",
          file=sys.stderr)
    return EXIT_BAD_INPUT


# ---- loading -------------------------------------------------------------------------------------------------
def load_eval_examples(data: EvalDataArgs) -> list[Any]:
    """The examples of ``data`` (unique ids, at least one); ``ValueError`` names what is wrong."""
    from rgsd.data.loaders import load_examples, require_unique_ids

    if not data.dataset_name:
        raise ValueError("--dataset-name is required (the rubric data)")
    if data.limit is not None and data.limit <= 0:
        raise ValueError(f"--limit must be >= 1, got {data.limit}")
    result = require_unique_ids(load_examples(data.dataset_name, **data.source_kwargs()))
    if not result.examples:
        raise ValueError(f"{data.dataset_name}: file: no examples")
    return result.examples


def load_generator(model: str, gen: GenerationArgs) -> tuple[Any, Any]:
    """Model and tokenizer: bf16 on a GPU (as in training and compare), float32 on CPU, unless --dtype says."""
    import torch

    from rgsd.models import load_model

    device = gen.device or ("cuda" if torch.cuda.is_available() else None)
    dtype = gen.dtype or ("bfloat16" if str(device).startswith("cuda") else "float32")
    return load_model(model, dtype=dtype, device=device)


def quiet_http_logs() -> None:
    """The HTTP client logs every request at INFO; keep those lines for -v only."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)


def close(judge: Any) -> None:
    if hasattr(judge, "close"):
        judge.close()


# ---- outcome -------------------------------------------------------------------------------------------------
def judge_failed(summary: dict[str, Any], max_rate: float) -> str | None:
    """Why the judge counts as failed for this summary (None when it did its job)."""
    total, failed = summary.get("n_verdicts", 0), summary.get("n_judge_failures", 0)
    if not failed:
        return None
    first = summary.get("first_failure")
    detail = f" (first failure: {first})" if first else ""
    if failed == total:
        return f"the judge failed: all {total} verdicts are judge failures{detail}"
    if failed / total > max_rate:
        return (
            f"the judge failed: {failed} of {total} verdicts ({100 * failed / total:.1f}%) are judge failures, "
            f"above --judge-max-failure-rate {max_rate}{detail}"
        )
    return None


def finish(summary: dict[str, Any], out: Path, max_failure_rate: float) -> int:
    """The exit code of a graded run (see :data:`EXIT_CODES_HELP`), with its message on stderr."""
    if summary.get("judge_error"):
        print(
            f"error: {summary['judge_error']}. {summary.get('n_graded')} of {summary.get('n_examples')} "
            f"examples graded before it; partial results in {out} (rerun with the same --judge-cache to finish).",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    failed = judge_failed(summary, max_failure_rate)
    if failed:
        print(f"error: {failed}; results in {out}", file=sys.stderr)
        return EXIT_JUDGE_FAILED
    if not summary.get("complete", True):
        print(
            f"judge budget exhausted: {summary.get('budget_stop')}. {summary.get('n_graded')} of "
            f"{summary.get('n_examples')} examples graded; partial results in {out}. Rerun with a larger "
            "--judge-max-calls/--judge-max-tokens-budget and the same --judge-cache to finish (cached verdicts "
            "are not paid again).",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    return 0
