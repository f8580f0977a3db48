"""``rgsd eval``: generate responses (or read a responses file), grade them with a judge, score, report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from rgsd.checks import AT_LEAST_ONE
from rgsd.data.options import EvalDataArgs
from rgsd.evaluate.command import (
    EXIT_BAD_INPUT,
    GenerationArgs,
    add_judging_command,
    close,
    finish,
    judge_failed,
    load_eval_examples,
    load_generator,
    quiet_http_logs,
    require_kind,
    require_out,
    write_failed,
)
from rgsd.evaluate.judge_cli import CanaryArgs, canary_gate
from rgsd.judges.options import JudgeOptions
from rgsd.options import arg, options

HELP = "grade a model's (or a file's) responses against rubrics with a judge"
DESCRIPTION = (
    "Generate --samples responses per prompt with --model (or read --responses), grade every "
    "criterion with the judge, write results.jsonl, summary.json, report.md."
)

OUT_FILES = ("responses.jsonl", "results.jsonl", "summary.json", "report.md")
SUMMARY_KEYS = ("n", "score", "score_std", "score_normalized", "n_failures", "failure_rate",
                "mean_response_tokens", "judge_name", "judge_cost_usd")


@dataclass
class EvalArgs:
    """What ``rgsd eval`` grades: a model's generations or a responses file."""

    model: str | None = arg(None, "Model to generate with (or 'smollm2-offline').")
    samples: int = arg(1, "With --model: responses per prompt at --temperature (> 0); scores are means over "
                          "prompts of the per-prompt means (compare two such folders with `rgsd compare-evals`).",
                     check=AT_LEAST_ONE)
    responses: str | None = arg(None, "JSONL of {prompt_id, response}; matched by prompt_id, or by line order "
                                      "without ids.")
    skip_missing: bool = arg(False, "With --responses: evaluate only examples that have a response (listed in "
                                    "summary.json).")
    tokenizer: str | None = arg(None, "With --responses: tokenizer for mean_response_tokens (default: --model's, "
                                      "else whitespace-separated words).")


def _responses(e: EvalArgs, data: EvalDataArgs, gen: GenerationArgs, examples: list[Any], out: Any) -> tuple:
    """``(examples, responses, response_tokens, tokenizer, skipped_ids)`` from the file or the model."""
    if e.responses:
        from rgsd.evaluate.responses import match_responses, read_responses

        if e.samples != 1:  # a file holds one response per line: --samples would mislabel the summary
            raise ValueError("--samples applies to --model (generated responses); a --responses file is read as is")
        examples, responses, skipped = match_responses(
            examples, read_responses(e.responses), e.responses, e.skip_missing, data.limit is not None)
        tokenizer = None
        if e.tokenizer or e.model:
            from rgsd.models import load_tokenizer

            tokenizer = load_tokenizer(e.tokenizer or e.model)
        return examples, responses, None, tokenizer, skipped
    if not e.model:
        raise ValueError("give --model (generate responses) or --responses FILE")
    from rgsd.evaluate.sampling import sample_responses

    model, tok = load_generator(e.model, gen)
    examples, rollouts = sample_responses(
        model, tok, examples, e.samples, temperature=gen.temperature, max_new_tokens=gen.max_new_tokens,
        batch_size=gen.batch_size, seed=gen.seed, progress=True)
    responses = [r.text for r in rollouts]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "responses.jsonl").open("w", encoding="utf-8") as fh:  # reusable with --responses
        for ex, r in zip(examples, responses):
            fh.write(json.dumps({"prompt_id": ex.id, "response": r}, ensure_ascii=False) + "\n")
    return examples, responses, [len(r.response_ids) for r in rollouts], None, []


def run(args: argparse.Namespace) -> int:
    from rgsd.judges.openai_judge import JudgeConfigError
    from rgsd.judges.options import build_judge, check, prices

    quiet_http_logs()
    judge = canaries = None
    try:
        e, data, gen, jo, ca = (options(args, c) for c in (EvalArgs, EvalDataArgs, GenerationArgs, JudgeOptions,
                                                            CanaryArgs))
        out = require_out(gen.out, OUT_FILES)
        require_kind(jo, ("openai", "regex"), "rgsd eval")
        check(jo)  # before generating: a bad judge option should not cost a generation pass
        price_table = prices(jo)
        examples = load_eval_examples(data)
        judge = build_judge(jo, out)  # before generating: an unusable cache file should not cost a generation pass
        if ca.canaries:  # before generating: a judge fooled by non-answers should not cost a generation pass
            code, canaries = canary_gate(judge, examples, ca, jo.judge_max_failure_rate, gen.seed, out)
            if code:
                close(judge)
                return code
        examples, responses, tokens, tokenizer, skipped = _responses(e, data, gen, examples, out)
    except (ValueError, JudgeConfigError) as err:  # DataError and ConfigError are ValueErrors
        close(judge)
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from rgsd.evaluate.run import JudgeRejected, evaluate

    extra: dict[str, Any] = {"data": data.dataset_name, "model": e.model, "responses_file": e.responses}
    empty = sum(not r.strip() for r in responses)
    if empty:  # graded and paid like any other: say so, a judge that passes them is worth knowing about
        extra["n_empty_responses"] = empty
        print(f"warning: {empty} of {len(responses)} responses are empty or whitespace; they are graded as they are",
              file=sys.stderr)
    if skipped:
        extra["skipped_no_response"] = skipped
    if canaries is not None:
        extra["canaries"] = canaries
    try:
        result = evaluate(examples, responses, judge, response_tokens=tokens, tokenizer=tokenizer, seed=gen.seed,
                          progress=True, extra_summary=extra, prices=price_table)
    except JudgeRejected as err:  # a 401 mid-run: keep what was graded, exit 2 below
        result = err.result
    finally:
        close(judge)
    if e.samples > 1:
        from rgsd.evaluate.sampling import sample_summary

        result.summary.update(sample_summary(result.records, e.samples, gen.temperature))
    rate = jo.judge_max_failure_rate
    result.summary["max_failure_rate"] = rate
    result.summary["judge_failed"] = judge_failed(result.summary, rate)  # None = the judge did its job
    try:
        result.write(out)
    except OSError as err:  # the disk filled or the folder went away while grading
        return write_failed(err, out)
    print(json.dumps({k: result.summary.get(k) for k in SUMMARY_KEYS}))
    if skipped:
        print(f"note: {len(skipped)} examples had no response and were skipped (listed in summary.json)")
    return finish(result.summary, out, rate)


def register(sub: argparse._SubParsersAction) -> None:
    add_judging_command(sub, "eval", EvalArgs, run, HELP, DESCRIPTION, extra=(CanaryArgs,))
