"""Check a rubric file: every load problem plus rubric-quality heuristics, and a summary of the data.

Errors (the file cannot be used as is; ``rgsd data lint`` exits 1): every load problem (malformed JSON,
missing field, wrong type, empty prompt or rubric, last turn not a user turn, ...), a zero weight, a repeated
example id. Warnings (shown, exit code unaffected, because genuine HealthBench data trips them): suspicious
polarity in either direction, the same criterion text twice in one example, an extremely long criterion, a
prompt that appears more than once, a RaR description without a category prefix or whose category
contradicts its sign.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rgsd.data.loaders import DataError, LoadIssue, Source, load_examples
from rgsd.data.rar import DEFAULT_POLICY, describes_failure, describes_good_behaviour
from rgsd.data.schema import Example

# HealthBench's longest criteria (level:cluster instructions) are 3,185 characters; 4,000 (~1,000 tokens)
# leaves them alone while catching a pasted document.
MAX_CRITERION_CHARS = 4000


@dataclass
class LintSummary:
    """What the file holds."""

    format: str = ""
    examples: int = 0
    criteria: int = 0
    per_example: tuple[int, float, int] = (0, 0.0, 0)  # min, mean, max criteria per example
    weight_histogram: dict[float, int] = field(default_factory=dict)  # signed points -> count
    negative: int = 0  # criteria with negative polarity
    skipped_records: int = 0
    duplicate_prompts: list[list[str]] = field(default_factory=list)  # groups of FILE:LINE

    @property
    def negative_share(self) -> float:
        return self.negative / self.criteria if self.criteria else 0.0


@dataclass
class LintReport:
    file: str
    problems: list[LoadIssue]
    summary: LintSummary

    @property
    def errors(self) -> list[LoadIssue]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[LoadIssue]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip(".").lower()


def _prompt_key(ex: Example) -> str:
    return "\n".join(f"{m['role']}: {_norm(m['content'])}" for m in ex.prompt)


def _check_example(ex: Example, src: Source, policy: str, max_chars: int) -> list[LoadIssue]:
    out: list[LoadIssue] = []
    rkey, tkey, wkey = (
        src.fields.get("rubric", "rubric"),
        src.fields.get("text", "text"),
        src.fields.get("weight"),
    )
    fmt_is_rar = src.fields.get("prompt") == "question"

    def add(f: str, message: str, severity: str = "warning") -> None:
        out.append(LoadIssue(src.file, src.line, f, message, src.unit, severity))

    seen: dict[str, int] = {}
    for i, c in enumerate(ex.rubric):
        f = f"{rkey}[{i}]"
        if c.weight == 0:
            add(f"{f}.{wkey}", "zero weight: the criterion cannot change any score", "error")
        key = _norm(c.text)
        if key in seen:
            add(f"{f}.{tkey}", f"duplicate criterion text (same as {rkey}[{seen[key]}])")
        seen.setdefault(key, i)
        if c.polarity == "negative" and describes_good_behaviour(c.text):
            add(
                f"{f}.{tkey}",
                "suspicious polarity: negative weight but the text describes desirable behaviour "
                f"({c.text.split()[0]!r} ...); check it, or load with --polarity avoid-positive or an override",
            )
        elif c.polarity == "positive" and c.weight > 0 and describes_failure(c.text):
            add(
                f"{f}.{tkey}",
                f"suspicious polarity: positive weight but the text describes a failure ({c.text.split()[0]!r} ...)",
            )
        if len(c.text) > max_chars:
            add(f"{f}.{tkey}", f"extremely long criterion ({len(c.text):,} characters > {max_chars:,})")
        if fmt_is_rar:
            if c.category is None:
                add(f"{f}.{tkey}", "no category prefix (Essential/Important/Optional/Pitfall Criteria:)")
            elif policy == "sign" and (c.category == "pitfall") != (c.polarity == "negative"):
                add(
                    f"{f}.{wkey}",
                    f"category {c.category!r} contradicts the sign of the weight ({c.points:g})",
                )
    return out


def lint_file(
    path: str | Path,
    format: str = "auto",
    polarity: str = DEFAULT_POLICY,
    polarity_overrides: Mapping[str, str] | None = None,
    split: str | None = None,
    max_criterion_chars: int = MAX_CRITERION_CHARS,
    config_name: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> LintReport:
    """Lint one file (any container :func:`~rgsd.data.loaders.load_examples` reads; ``split``,
    ``config_name`` and ``columns`` as there)."""
    label = str(path)
    summary = LintSummary()
    try:
        result = load_examples(
            label,
            format=format,
            polarity=polarity,
            on_error="skip",
            split=split,
            polarity_overrides=polarity_overrides,
            config_name=config_name,
            columns=columns,
        )
    except DataError as err:
        # A whole-file problem (missing file, unknown format, ...): report it as the file's one error.
        return LintReport(label, err.issues or [LoadIssue(label, None, "file", str(err))], summary)
    problems = list(result.skipped)
    for key in result.unused_overrides:
        problems.append(
            LoadIssue(
                label,
                None,
                "polarity_overrides",
                f"override {key!r} matches no criterion",
                severity="warning",
            )
        )
    ids: dict[str, str] = {}
    prompts: dict[str, list[str]] = {}
    for ex, src in zip(result.examples, result.sources):
        problems.extend(_check_example(ex, src, polarity, max_criterion_chars))
        if ex.id in ids:
            problems.append(
                LoadIssue(
                    label,
                    src.line,
                    src.fields.get("id", "id"),
                    f"duplicate example id {ex.id!r} (also {ids[ex.id]})",
                    src.unit,
                )
            )
        ids.setdefault(ex.id, src.where)
        group = prompts.setdefault(_prompt_key(ex), [])
        if group:
            problems.append(
                LoadIssue(
                    label,
                    src.line,
                    src.fields.get("prompt", "prompt"),
                    f"duplicate prompt (same text as {group[0]})",
                    src.unit,
                    "warning",
                )
            )
        group.append(src.where)
    counts = [len(ex.rubric) for ex in result.examples]
    crits = [c for ex in result.examples for c in ex.rubric]
    summary = LintSummary(
        format=result.format,
        examples=len(result.examples),
        criteria=len(crits),
        per_example=(min(counts), sum(counts) / len(counts), max(counts)) if counts else (0, 0.0, 0),
        weight_histogram=dict(sorted(Counter(c.points for c in crits).items())),
        negative=sum(c.polarity == "negative" for c in crits),
        skipped_records=result.skipped_records,
        duplicate_prompts=[g for g in prompts.values() if len(g) > 1],
    )
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return LintReport(label, problems, summary)


def format_summary(report: LintReport) -> str:
    """Human-readable summary lines for one report."""
    s = report.summary
    lo, mean, hi = s.per_example
    hist = " ".join(f"{w:g}:{n}" for w, n in s.weight_histogram.items()) or "-"
    dups = "; ".join(", ".join(g) for g in s.duplicate_prompts) or "none"
    return "\n".join(
        [
            (
                f"{report.file}: {s.examples:,} examples, {s.criteria:,} criteria "
                f"({s.format or 'format unknown'}); {s.skipped_records:,} records not loadable"
            ),
            f"  criteria per example: min {lo}, mean {mean:.1f}, max {hi}",
            f"  negative criteria: {s.negative:,} ({100 * s.negative_share:.1f}%)",
            f"  weights: {hist}",
            f"  duplicate prompts: {dups}",
            f"  problems: {len(report.errors)} errors, {len(report.warnings)} warnings",
        ]
    )
