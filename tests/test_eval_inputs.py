"""`rgsd eval` on bad files and folders: exit 2 with one line naming the place, before anything is paid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from judge_server import JudgeServer, judging_policy  # noqa: E402
from test_judge_eval_cli import eval_args, write_data  # noqa: E402

from rgsd.cli import main  # noqa: E402
from rgsd.data.loaders import DataError, load_examples  # noqa: E402

RULE = judging_policy(lambda criterion, points, response: criterion.split()[-1].lower() in response.lower())


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", ["out is a file", "out under a file", "results.jsonl is a folder",
                                  "summary.json is a folder"])
def test_an_output_place_that_cannot_be_written_is_refused_before_any_call(tmp_path, capsys, case):
    out = tmp_path / "out"
    if case == "out is a file":
        out.write_text("x")
    elif case == "out under a file":
        (tmp_path / "plain").write_text("x")
    else:
        (out / case.split()[0]).mkdir(parents=True)
    with JudgeServer(RULE) as s:
        args = eval_args(tmp_path, s.url)
        if case == "out under a file":
            args[args.index("--out") + 1] = str(tmp_path / "plain" / "out")
        assert main(args) == 2
        assert s.count == 0
    line = one_error_line(capsys)
    assert line.startswith("error: --out ") and {"out is a file": "is a file, not a folder",
                                                 "out under a file": "cannot write there",
                                                 "results.jsonl is a folder": "results.jsonl is a folder",
                                                 "summary.json is a folder": "summary.json is a folder"}[case] in line


def test_a_lone_surrogate_in_a_response_or_the_data_names_file_line_field(tmp_path, capsys):
    with JudgeServer(RULE) as s:
        args = eval_args(tmp_path, s.url)
        responses = Path(args[args.index("--responses") + 1])
        lines = responses.read_text().splitlines()
        lines[1] = '{"prompt_id": "B", "response": "ban\\ud800ana"}'
        responses.write_text("\n".join(lines) + "\n")
        assert main(args) == 2 and s.count == 0
    assert one_error_line(capsys) == (
        f"error: {responses}:2: response: not valid Unicode: a lone surrogate \\ud800 at character 4")
    data = write_data(tmp_path)
    text = data.read_text().replace("Mentions banana", "Mentions ban\\udc00ana", 1)
    data.write_text(text)
    with pytest.raises(DataError, match=r"data.jsonl:1: rubric\[1\]\.text: not valid Unicode: a lone surrogate \\udc00"):
        load_examples(str(data))


def test_a_record_with_no_criteria_says_so_not_that_the_format_is_unknown(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "Q?", "rubric": []}) + "\n")
    with pytest.raises(DataError, match=r"d.jsonl:1: rubric: empty: a record needs at least one criterion"):
        load_examples(str(path))


def test_empty_responses_are_graded_with_a_warning_and_counted(tmp_path, capsys):
    with JudgeServer(RULE) as s:
        args = eval_args(tmp_path, s.url)
        responses = Path(args[args.index("--responses") + 1])
        responses.write_text("".join(json.dumps({"prompt_id": k, "response": v}) + "\n"
                                     for k, v in {"A": "apple", "B": "  \n", "C": ""}.items()))
        assert main(args) == 0
    assert "warning: 2 of 3 responses are empty or whitespace" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_empty_responses"] == 2


def test_results_that_cannot_be_written_after_grading_exit_2_and_a_rerun_pays_nothing(tmp_path, capsys):
    out = tmp_path / "out"

    def sabotage(body: dict) -> str:  # while grading, something takes the results' place
        (out / "results.jsonl").mkdir(exist_ok=True)
        return RULE(body)

    with JudgeServer(sabotage) as s:
        args = eval_args(tmp_path, s.url)
        assert main(args) == 2
        paid = s.count
        assert paid == 9
        line = one_error_line(capsys)
        assert line.startswith(f"error: could not write the results to {out}") and "same --judge-cache" in line
        (out / "results.jsonl").rmdir()
        s.policy = RULE
        assert main(args) == 0 and s.count == paid  # every verdict came back from the cache
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
