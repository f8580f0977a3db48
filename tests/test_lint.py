"""``rgsd data lint`` / ``convert`` and :func:`lint_file` on planted defects, fixtures and HealthBench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rgsd.cli import main
from rgsd.data import load_examples
from rgsd.data.lint import lint_file

FIXTURES = Path(__file__).parent / "fixtures"
PLANTED = FIXTURES / "planted_defects.jsonl"
HB = Path(__file__).resolve().parents[2] / "shared/data/healthbench"

# One message per planted defect: (line, field, severity, start of the message).
EXPECTED = [
    (2, "record", "error", "malformed JSON"),
    (3, "prompt", "error", "missing"),
    (4, "prompt", "error", "empty prompt (no messages)"),
    (5, "prompt[1].role", "error", "the last message must be a user turn, got 'assistant'"),
    (6, "prompt[0].role", "error", 'unknown role "bot"'),
    (7, "rubrics", "error", "empty rubric"),
    (8, "rubrics[0].points", "error", 'wrong type: expected a number, got str "5"'),
    (9, "rubrics[1].criterion", "error", "empty text"),
    (10, "rubrics[0].tags", "error", "wrong type: expected a list of strings"),
    (11, "rubrics[1].points", "error", "zero weight"),
    (12, "rubrics[2].criterion", "warning", "duplicate criterion text (same as rubrics[0])"),
    (13, "rubrics[3].criterion", "warning", "suspicious polarity: negative weight"),
    (14, "rubrics[3].criterion", "warning", "suspicious polarity: positive weight"),
    (15, "rubrics[3].criterion", "warning", "extremely long criterion (5,110 characters"),
    (16, "prompt", "warning", "duplicate prompt (same text as"),
    (17, "record", "error", "wrong type: expected a JSON object, got list"),
    (18, "prompt[0].content", "error", "empty user message"),
    (19, "prompt_id", "error", "duplicate example id 'ok-1'"),
    (20, "rubrics[2].points", "error", "not a finite number (nan)"),
]


def hb_file(name: str) -> Path:
    path = HB / name
    if not path.exists():
        pytest.skip(f"HealthBench data not found at {path}")
    return path


def test_planted_defects_one_message_each():
    report = lint_file(PLANTED)
    got = [(p.line, p.field, p.severity) for p in report.problems]
    assert got == [e[:3] for e in EXPECTED]
    for p, (_, _, _, start) in zip(report.problems, EXPECTED):
        assert p.message.startswith(start), (p.message, start)
    assert not report.ok
    s = report.summary
    assert (s.examples, s.criteria, s.skipped_records) == (8, 28, 12)
    assert s.per_example == (3, 3.5, 4)
    assert s.weight_histogram == {-6: 8, -4: 1, 0: 1, 2: 1, 3: 7, 4: 1, 5: 8, 6: 1}
    assert s.negative == 9 and s.negative_share == pytest.approx(9 / 28)
    assert s.duplicate_prompts == [[f"{PLANTED}:1", f"{PLANTED}:16"]]


def test_cli_lint_planted_exit_1(capsys):
    assert main(["data", "lint", str(PLANTED)]) == 1
    out = capsys.readouterr().out.splitlines()
    problem_lines = [
        line for line in out if line.startswith(f"{PLANTED}:") and not line.startswith(f"{PLANTED}: ")
    ]
    assert len(problem_lines) == len(EXPECTED)
    assert problem_lines[6] == f'{PLANTED}:8: rubrics[0].points: wrong type: expected a number, got str "5"'
    assert problem_lines[10].startswith(
        f"{PLANTED}:12: rubrics[2].criterion: warning: duplicate criterion text"
    )
    assert any("14 errors, 5 warnings" in line for line in out)


def test_cli_lint_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "rgsd.cli", "data", "lint", str(PLANTED)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == f"{PLANTED}:2: record: malformed JSON: Expecting value (column 105)"
    assert f"{PLANTED}: 8 examples, 28 criteria (healthbench); 12 records not loadable" in proc.stdout


@pytest.mark.parametrize(
    "name, n_examples, n_criteria",
    [("healthbench_val500.jsonl", 500, 5965), ("healthbench_sample30.jsonl", 30, 352)],
)
def test_healthbench_lints_clean(capsys, name, n_examples, n_criteria):
    path = hb_file(name)
    assert main(["data", "lint", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: {n_examples:,} examples, {n_criteria:,} criteria (healthbench)" in out
    report = lint_file(path)
    assert report.ok and (report.summary.examples, report.summary.criteria) == (n_examples, n_criteria)
    # Genuine HealthBench quirks are warnings only: "Avoids ..." penalties, "Fails to ..." rewards, and one
    # example (val500 line 299) that lists three criteria twice.
    assert all(p.severity == "warning" for p in report.problems)
    if name == "healthbench_val500.jsonl":
        dups = [p.line for p in report.problems if "duplicate criterion" in p.message]
        assert dups == [299, 299, 299]


def test_rar_lint_and_policy():
    report = lint_file(FIXTURES / "rar_sample.jsonl")
    msgs = [(p.line, p.field, p.message.split(":")[0]) for p in report.problems]
    assert msgs == [
        (2, "rubric[3].description", "suspicious polarity"),
        (2, "rubric[4].description", "suspicious polarity"),
        (3, "rubric[2].description", "no category prefix (Essential/Important/Optional/Pitfall Criteria"),
    ]
    avoid = lint_file(FIXTURES / "rar_sample.jsonl", polarity="avoid-positive")
    assert [p.line for p in avoid.problems] == [3]
    assert report.ok and report.summary.negative == 4 and avoid.summary.negative == 2


def test_lint_whole_file_problem(tmp_path, capsys):
    missing = tmp_path / "nope.jsonl"
    assert main(["data", "lint", str(missing)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"{missing}: file: not found"


def test_convert_canonical_round_trip(tmp_path, capsys):
    src = FIXTURES / "rar_sample.jsonl"
    out = tmp_path / "out" / "rar.canonical.jsonl"
    assert main(["data", "convert", str(src), str(out), "--polarity", "avoid-positive"]) == 0
    assert "wrote 3 examples (15 criteria, format rar)" in capsys.readouterr().out
    back = load_examples(out)
    assert back.format == "canonical"
    assert back.examples == load_examples(src, polarity="avoid-positive").examples
    assert json.loads(out.read_text().splitlines()[1])["rubric"][3]["polarity"] == "positive"


def test_convert_strict_and_skip(tmp_path, capsys):
    out = tmp_path / "planted.jsonl"
    assert main(["data", "convert", str(PLANTED), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{PLANTED}:2: record: malformed JSON") and not out.exists()
    assert main(["data", "convert", str(PLANTED), str(out), "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    # 12 bad records plus the repeated id 'ok-1' on line 19 (the first, line 1, is kept)
    assert "wrote 7 examples" in captured.out and "skipped 13 records" in captured.out
    assert len(captured.err.splitlines()) == 13  # every skipped problem is listed
    assert f"{PLANTED}:19: prompt_id: duplicate example id 'ok-1' (first at {PLANTED}:1)" in captured.err
    assert len(out.read_text().splitlines()) == 7


def test_convert_with_overrides_file(tmp_path, capsys):
    overrides = tmp_path / "ov.json"
    overrides.write_text(json.dumps({"line-1/c5": "positive", "ghost/c0": "negative"}))
    out = tmp_path / "o.jsonl"
    args = [
        "data",
        "convert",
        str(FIXTURES / "rar_sample.jsonl"),
        str(out),
        "--polarity-overrides",
        str(overrides),
    ]
    assert main(args) == 0
    assert "override 'ghost/c0' matches no criterion" in capsys.readouterr().err
    assert load_examples(out).examples[0].points == [5, 5, 4, 1, -2, 1]


def test_non_utf8_bytes_are_reported_per_line_and_other_files_still_lint(tmp_path, capsys):
    canonical = (FIXTURES / "canonical_sample.jsonl").read_bytes().splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(canonical[0] + canonical[1].replace(b"user", b"us\xc3\x28er", 1))  # invalid 2-byte sequence
    allbad = tmp_path / "allbad.jsonl"
    allbad.write_bytes(b'{"id": "x\xff"}\n')
    good = FIXTURES / "canonical_sample.jsonl"
    assert main(["data", "lint", str(allbad), str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert f"{allbad}:1: encoding: not UTF-8 (byte 0xff at column 10)" in out
    assert f"{bad}:2: encoding: not UTF-8 (byte 0xc3" in out
    assert f"{bad}: 1 examples" in out and f"{good}: 2 examples" in out  # the rest still linted
    overrides = tmp_path / "ov.json"
    overrides.write_bytes(b'{\n  "a\xfe": "negative"}')
    assert main(["data", "lint", str(good), "--polarity-overrides", str(overrides)]) == 1
    assert f"{overrides}:2: encoding: not UTF-8 (byte 0xfe at column 5)" in capsys.readouterr().err
