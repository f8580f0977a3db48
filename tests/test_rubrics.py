"""``rgsd rubrics generate`` over loopback HTTP against the scripted generator of tests/rubric_server.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rubric_server import GARBAGE_REPLY, GeneratorServer, good_items  # noqa: E402

from rgsd.cli import main
from rgsd.judges.parse import ParseError
from rgsd.rubrics.clean import build_rubric, copies_reference, merge_duplicates
from rgsd.rubrics.parse import DEFAULT_WEIGHTS, Item, parse_rubric_reply, parse_weight_map

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REF = (
    "Rest and fluids help most colds clear within ten days while antibiotics do nothing against the viruses "
    "that cause them and can bring side effects of their own"
)


@pytest.fixture
def server():
    with GeneratorServer() as s:
        yield s


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def generate(server, data, out, *extra: str) -> int:
    return main(["rubrics", "generate", "--dataset-name", str(data), "--out", str(out), "--judge", "openai",
                 "--judge-model", "gen", "--judge-base-url", server.url, *extra])


def lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text(encoding="utf-8").splitlines()]


# ---- the strict parser and the checks -----------------------------------------------------------------
def test_parse_accepts_a_good_reply_and_normalizes_whitespace():
    items = parse_rubric_reply(json.dumps({"criteria": [{"text": " States  X. ", "category": "Essential", "weight": 5}]}))
    assert items == [Item("States X.", "Essential", 5.0)]
    fenced = "Sure:\n```json\n" + json.dumps({"criteria": good_items("user: colds")}) + "\n```"
    assert len(parse_rubric_reply(fenced)) == 8


@pytest.mark.parametrize(
    "criteria, why",
    [
        ([{"text": "X", "category": "essential", "weight": 5}], "category"),  # exact spelling only
        ([{"text": "X", "category": "Essential", "weight": 4}], "outside the Essential range"),
        ([{"text": "X", "category": "Important", "weight": -3}], "outside the Important range"),
        ([{"text": "X", "category": "Optional", "weight": True}], "must be a number"),
        ([{"text": "X", "category": "Optional", "weight": "2"}], "must be a number"),
        ([{"text": "", "category": "Optional", "weight": 2}], "non-empty"),
        ([{"text": "X", "category": "Optional"}], "missing 'weight'"),
        ([{"text": "X", "category": "Optional", "weight": 2, "why": "?"}], "unknown key 'why'"),
        ([{"text": "Avoids jargon.", "category": "Pitfall", "weight": -1}], "describe the mistake"),
        ([], "empty"),
        ("x", "must be a list"),
    ],
)
def test_parse_rejects_with_the_reason(criteria, why):
    with pytest.raises(ParseError, match=why):
        parse_rubric_reply(json.dumps({"criteria": criteria}))


def test_parse_rejects_non_json_and_two_objects():
    with pytest.raises(ParseError):
        parse_rubric_reply(GARBAGE_REPLY)
    with pytest.raises(ParseError):
        parse_rubric_reply('{"criteria": []} and also {"criteria": []}')


def test_weight_map_is_configurable_and_checked():
    w = parse_weight_map("Important=2:3, pitfall=-5")
    assert w["Important"] == (2.0, 3.0) and w["Pitfall"] == (-5.0, -5.0) and w["Essential"] == DEFAULT_WEIGHTS["Essential"]
    for bad in ("Essential=-1", "Pitfall=1:2", "Crucial=5", "Optional=a:b", "Optional"):
        with pytest.raises(ValueError, match="weights"):
            parse_weight_map(bad)
    item = {"criteria": [{"text": "X", "category": "Important", "weight": 2}]}
    assert parse_rubric_reply(json.dumps(item), w)[0].weight == 2.0


def test_merge_copy_and_rubric_checks_on_hand_made_items():
    items = [Item("States the dose.", "Important", 3), Item("states dose", "Essential", 5), Item("Other.", "Optional", 1)]
    merged, n = merge_duplicates(items)
    assert n == 1 and [(m.text, m.category, m.weight) for m in merged] == [("States the dose.", "Essential", 5), ("Other.", "Optional", 1)]
    with pytest.raises(ParseError, match="both as a reward and as a Pitfall"):
        merge_duplicates([Item("Gives a dose.", "Optional", 1), Item("Gives a dose", "Pitfall", -1)])
    assert copies_reference("Says that antibiotics do nothing against the viruses that cause them and can bring", REF, 10)
    assert not copies_reference("Says that antibiotics do nothing against viruses.", REF, 10)
    with pytest.raises(ParseError, match="no positive criterion"):
        build_rubric([Item("Claims X.", "Pitfall", -2)], None, 1, 20)
    with pytest.raises(ParseError, match="only 1 distinct criteria .1 duplicates merged"):
        build_rubric(items[:2], None, 2, 20)
    with pytest.raises(ParseError, match="at most 2"):
        build_rubric([Item(f"Item {i}.", "Optional", 1) for i in range(3)], None, 1, 2)


# ---- the command over loopback HTTP ---------------------------------------------------------------------
ROWS = [
    {"id": "good", "prompt": "user asks: colds and antibiotics", "reference": REF},
    {"id": "malformed", "prompt": "MALFORMED colds", "reference": REF},
    {"id": "dupes", "prompt": "DUPLICATES colds"},
    {"id": "copies", "prompt": "COPIES colds", "reference": REF},
    {"id": "nopos", "prompt": "NOPOSITIVE colds"},
    {"id": "garbage", "prompt": "GARBAGE colds"},
    {"id": "badweight", "prompt": "BADWEIGHT colds"},
    {"id": "avoids", "prompt": [{"role": "user", "content": "AVOIDS colds"}]},
]


def test_generate_writes_linted_rubrics_counts_failures_and_resumes(server, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "rubrics.jsonl"
    assert generate(server, data, out) == 1  # two prompts failed
    calls = server.count
    # good 1, malformed 2, dupes 1, copies 1, nopos 3 (re-asked twice), garbage 3, badweight 2, avoids 2
    assert calls == 15
    got = lines(out)
    assert [r["id"] for r in got] == ["good", "malformed", "dupes", "copies", "badweight", "avoids"]
    for r in got:
        assert isinstance(r["prompt"], list) and r["prompt"][-1]["role"] == "user"
        assert [c["id"] for c in r["rubric"]] == [f"c{i}" for i in range(len(r["rubric"]))]
        cats = [c["category"] for c in r["rubric"]]
        assert cats[:8] == ["essential"] * 2 + ["important"] * 3 + ["optional"] * 2 + ["pitfall"]
        pit = r["rubric"][7]
        assert (pit["polarity"], pit["weight"]) == ("negative", 2.0) and pit["text"].startswith("Claims")
        assert all(c["weight"] > 0 for c in r["rubric"])
    by_id = {r["id"]: r for r in got}
    assert len(by_id["dupes"]["rubric"]) == 8 and by_id["dupes"]["metadata"]["rubric_generator"]["merged"] == 4
    copies = by_id["copies"]["rubric"]
    assert len(copies) == 10 and [c["tags"] for c in copies].count(["copies-reference"]) == 2
    assert by_id["good"]["reference"] == REF and by_id["dupes"]["reference"] is None
    assert by_id["badweight"]["rubric"][0]["weight"] == 5.0  # the re-asked reply, not the bad one
    fails = {f["id"]: f for f in lines(tmp_path / "rubrics.jsonl.failures.jsonl")}
    assert set(fails) == {"nopos", "garbage"}
    assert "no positive criterion" in fails["nopos"]["error"] and "after 3 tries" in fails["garbage"]["error"]
    assert fails["nopos"]["where"].endswith("in.jsonl:5")
    err = capsys.readouterr().err
    assert "in.jsonl:6: rubric: unusable reply after 3 tries" in err
    assert "rubrics: " in err  # the progress bar (stderr)

    capsys.readouterr()
    assert main(["data", "lint", str(out)]) == 0
    report = capsys.readouterr().out
    assert "6 examples, 50 criteria (canonical)" in report and "problems: 0 errors, 0 warnings" in report

    # Rerun: the six written rubrics cost nothing; only the two failures are asked again (3 tries each).
    assert generate(server, data, out) == 1
    assert server.count - calls == 6
    assert [r["id"] for r in lines(out)] == [r["id"] for r in got] and lines(out) == got


def test_rerun_pays_nothing_from_the_output_or_from_the_cache(server, tmp_path):
    rows = [{"id": f"p{i}", "prompt": f"question {i} about colds", "reference": REF} for i in range(4)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "r.jsonl"
    assert generate(server, data, out) == 0 and server.count == 4
    first = out.read_text()
    assert generate(server, data, out) == 0 and server.count == 4  # kept from the output file
    out.unlink()
    assert generate(server, data, out) == 0 and server.count == 4  # replayed from the cache
    assert out.read_text() == first


def test_budget_stop_writes_what_it_has_and_the_rerun_completes(server, tmp_path, capsys):
    rows = [{"id": f"p{i}", "prompt": f"question {i}"} for i in range(5)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "r.jsonl"
    assert generate(server, data, out, "--judge-max-calls", "2", "--judge-concurrency", "1") == 3
    assert "budget exhausted" in capsys.readouterr().err
    assert len(lines(out)) == 2 and server.count == 2
    assert generate(server, data, out) == 0
    assert server.count == 5 and [r["id"] for r in lines(out)] == [f"p{i}" for i in range(5)]


def test_structured_output_is_sent_and_dropped_when_the_endpoint_rejects_it(tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", ROWS[:1])
    with GeneratorServer() as s:
        assert generate(s, data, tmp_path / "a.jsonl") == 0
        fmt = s.requests[0]["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["criteria"]
    with GeneratorServer(reject_response_format=True) as s:
        assert generate(s, data, tmp_path / "b.jsonl") == 0
        assert s.count == 2 and "response_format" not in s.requests[1]
    with GeneratorServer(reject_response_format=True) as s:
        assert generate(s, data, tmp_path / "c.jsonl", "--judge-structured", "on") == 1
    with GeneratorServer() as s:
        assert generate(s, data, tmp_path / "d.jsonl", "--judge-structured", "off") == 0
        assert "response_format" not in s.requests[0]


def test_min_max_criteria_and_custom_weights(server, tmp_path):
    data = write_jsonl(tmp_path / "in.jsonl", ROWS[:1])
    assert generate(server, data, tmp_path / "a.jsonl", "--min-criteria", "1", "--max-criteria", "5") == 1  # 8 items: re-asked, failed
    assert server.count == 3
    assert generate(server, data, tmp_path / "b.jsonl", "--weights", "Important=4") == 1  # a 3 is out of range
    assert generate(server, data, tmp_path / "c.jsonl", "--min-criteria", "9", "--max-criteria", "3") == 2


def test_reads_rubric_formats_and_hf_datasets_with_column_mapping(server, tmp_path):
    out = tmp_path / "rar.jsonl"
    assert generate(server, FIXTURES / "rar_sample.jsonl", out) == 0
    got = lines(out)
    src = [json.loads(t) for t in (FIXTURES / "rar_sample.jsonl").read_text().splitlines() if t.strip()]
    assert len(got) == len(src) and got[0]["reference"] == src[0].get("reference_answer")
    assert main(["data", "lint", str(out)]) == 0

    import datasets

    ds = datasets.Dataset.from_list(
        [{"q": "question one", "sol": {"text": REF}, "key": "a"}, {"q": "question two", "sol": {"text": "B"}, "key": "b"}]
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    out = tmp_path / "hf.jsonl"
    assert generate(server, tmp_path / "hf", out, "--prompt-column", "q", "--reference-column", "sol.text",
                    "--id-column", "key") == 0
    got = lines(out)
    assert [(r["id"], r["prompt"][0]["content"], r["reference"]) for r in got] == [
        ("a", "question one", REF), ("b", "question two", "B")]


def test_bad_input_names_file_line_and_field_and_writes_nothing(server, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", [ROWS[0], {"id": "x", "prompt": 5}, {"id": "good", "prompt": "again"}])
    out = tmp_path / "r.jsonl"
    assert generate(server, data, out) == 1
    err = capsys.readouterr().err
    assert "in.jsonl:2: prompt: wrong type" in err and "in.jsonl:3: id: duplicate id 'good'" in err
    assert not out.exists() and server.count == 0
    assert generate(server, data, out, "--on-error", "skip") == 0 and len(lines(out)) == 1


def test_generator_takes_the_judge_flags_and_refuses_what_it_cannot_use(server, tmp_path, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", ROWS[:1])
    assert generate(server, data, tmp_path / "a.jsonl", "--judge", "regex") == 2
    assert "--judge regex: rgsd rubrics generate needs openai" in capsys.readouterr().err
    assert generate(server, data, tmp_path / "a.jsonl", "--judge-mode", "batched") == 2
    assert "--judge-mode is not used by rgsd rubrics generate" in capsys.readouterr().err
    args = ["rubrics", "generate", "--dataset-name", str(data), "--out", str(tmp_path / "b.jsonl"),
            "--judge-model", "gen,other", "--judge-base-url", server.url]
    assert main(args) == 2 and "asks one model, not a panel" in capsys.readouterr().err
    assert server.count == 0
    old = ["rubrics", "generate", "--data", str(data), "--out", str(tmp_path / "c.jsonl"), "--judge-model", "gen"]
    with pytest.warns(FutureWarning, match="'base_url' is deprecated"):  # the old names, for one release
        assert main(old + ["--base-url", server.url, "--structured", "off"]) == 0
    assert "response_format" not in server.requests[0]
