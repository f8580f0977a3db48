"""Loaders: every format and container, validation messages, polarity policy and overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rgsd.data import DataError, load_examples
from rgsd.data.rar import decide_polarity, describes_failure, describes_good_behaviour, parse_category
from rgsd.data.schema import Example

FIXTURES = Path(__file__).parent / "fixtures"
HB = Path(__file__).resolve().parents[2] / "shared/data/healthbench"


def hb_file(name: str) -> Path:
    path = HB / name
    if not path.exists():
        pytest.skip(f"HealthBench data not found at {path}")
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


# ------------------------------------------------------------------------------------------ HealthBench
def test_healthbench_val500_counts_and_ids():
    res = load_examples(hb_file("healthbench_val500.jsonl"))
    crits = [c for ex in res.examples for c in ex.rubric]
    assert res.format == "healthbench"
    assert (len(res.examples), len(crits)) == (500, 5965)
    assert sum(c.polarity == "negative" for c in crits) == 1859  # the README's count
    assert res.examples[0].id == "line-1" and res.examples[499].id == "line-500"
    assert [c.id for c in res.examples[0].rubric][:3] == ["c0", "c1", "c2"]
    assert all(c.weight > 0 for c in crits)  # weights are magnitudes; the sign went into polarity


def test_healthbench_sample30_fields():
    path = hb_file("healthbench_sample30.jsonl")
    res = load_examples(path)
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert (len(res.examples), sum(len(e.rubric) for e in res.examples)) == (30, 352)
    assert sum(e.reference is not None for e in res.examples) == 24
    for ex, rec in zip(res.examples, raw):
        assert ex.id == rec["prompt_id"]
        assert ex.prompt == rec["prompt"]
        assert ex.metadata["example_tags"] == rec["example_tags"]
        assert ex.points == [float(r["points"]) for r in rec["rubrics"]]
        assert [c.tags for c in ex.rubric] == [r["tags"] for r in rec["rubrics"]]
        ideal = rec["ideal_completions_data"]
        assert ex.reference == (ideal["ideal_completion"] if ideal else None)


# --------------------------------------------------------------------------------------------------- RaR
@pytest.mark.parametrize(
    "description, category, text",
    [
        ("Essential Criteria: States X.", "essential", "States X."),
        ("Essential Critical: States X.", "essential", "States X."),
        ("Important Crieria: States X.", "important", "States X."),
        ("Pitfal Criteria: Says Y.", "pitfall", "Says Y."),
        ("Pitfall Criteria Does not mention Z.", "pitfall", "Does not mention Z."),
        ("optional criteria: Adds W.", "optional", "Adds W."),
        ("OPTIONAL CRITERION - Adds W.", "optional", "Adds W."),
        ("Esential Criteria: States X.", "essential", "States X."),
        ("Pitfall: Says Y.", "pitfall", "Says Y."),
        ("Important details are given.", None, "Important details are given."),
        ("Uses SI units.", None, "Uses SI units."),
        ("Critical: Mentions X.", None, "Critical: Mentions X."),
    ],
)
def test_parse_category_tolerates_typos(description, category, text):
    assert parse_category(description) == (category, text)


def test_rar_fixture_categories_and_policies():
    path = FIXTURES / "rar_sample.jsonl"
    res = load_examples(path)
    assert res.format == "rar"
    med, sci, unit = res.examples
    assert [c.category for c in med.rubric] == [
        "essential",
        "essential",
        "important",
        "optional",
        "pitfall",
        "pitfall",
    ]
    assert med.points == [5, 5, 4, 1, -2, -1]
    assert med.rubric[1].text == "Recommends an ECG within 10 minutes of arrival."
    assert med.reference.startswith("Acute coronary syndrome")
    assert med.metadata["question_source"] == "fixture-medicine"
    assert med.metadata["rubric_titles"][0] == "Diagnosis"
    assert med.prompt == [
        {"role": "user", "content": json.loads(path.read_text().splitlines()[0])["question"]}
    ]
    assert sci.points == [5, 3, 2, -1, -2]
    assert unit.rubric[2].category is None and unit.rubric[2].text == "Uses SI units throughout."
    # "avoid-positive": the science pitfalls ("Avoids ...") become rewards; the medicine ones stay penalties.
    res2 = load_examples(path, polarity="avoid-positive")
    assert res2.examples[0].points == [5, 5, 4, 1, -2, -1]
    assert res2.examples[1].points == [5, 3, 2, 1, 2]
    assert res2.examples[1].rubric[3].category == "pitfall"


@pytest.mark.parametrize(
    "text, good, failure",
    [
        ("Avoids claiming that ice contains air.", True, False),
        ("Avoid repeating details.", True, False),
        ("Refrains from diagnosing.", True, False),
        ("Never recommends stopping insulin.", True, False),
        ("Correctly identifies the dose.", True, False),
        ("Does not incorrectly claim that X.", True, False),
        ("Doesn't confuse mass with weight.", True, False),
        ("Does not mention calling emergency services.", False, False),  # omission: a failure when met
        ("Does not include a detailed explanation.", False, False),  # ambiguous: left alone
        ("Fails to advise on emergency care.", False, True),
        ("Omits the dosage.", False, True),
        ("Incorrectly mentions herbal tea.", False, True),
        ("Recommends fluids.", False, False),
    ],
)
def test_phrasing_rules(text, good, failure):
    assert describes_good_behaviour(text) is good
    assert describes_failure(text) is failure


def test_decide_polarity():
    assert decide_polarity(-3, "Avoids jargon.", "sign") == (3.0, "negative")
    assert decide_polarity(-3, "Avoids jargon.", "avoid-positive") == (3.0, "positive")
    assert decide_polarity(-3, "Does not mention X.", "avoid-positive") == (3.0, "negative")
    assert decide_polarity(4, "Fails to X.", "avoid-positive") == (4.0, "positive")
    with pytest.raises(ValueError, match="unknown polarity policy"):
        decide_polarity(1, "x", "flip")


# ------------------------------------------------------------------------------ RubricHub, canonical, generic
def test_rubrichub_fixture():
    res = load_examples(FIXTURES / "rubrichub_sample.jsonl")
    assert res.format == "rubrichub"
    first, second = res.examples
    assert [m["role"] for m in first.prompt] == ["system", "user"]
    assert second.prompt == [{"role": "user", "content": "Explain what a p-value is in one paragraph."}]
    assert second.rubric[1].tags == ["topic:statistics", "misconception"]
    assert second.metadata["example_tags"] == ["domain:science"]
    assert first.points == [8, 6, 4] and first.id == "line-1"


def test_canonical_round_trip_and_not_reinterpreted():
    path = FIXTURES / "canonical_sample.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    for policy in ("sign", "avoid-positive"):
        res = load_examples(path, polarity=policy)
        assert res.format == "canonical"
        assert [ex.to_dict() for ex in res.examples] == raw
    assert res.examples[0].rubric[0].pattern == "(?i)fluids"
    assert res.examples[1].rubric[1].polarity == "negative"  # "Avoids ..." but polarity is explicit


def test_healthbench_to_canonical_round_trip(tmp_path):
    res = load_examples(hb_file("healthbench_sample30.jsonl"))
    out = write_jsonl(tmp_path / "canon.jsonl", [json.dumps(ex.to_dict()) for ex in res.examples])
    again = load_examples(out)
    assert again.format == "canonical"
    assert again.examples == res.examples


def test_generic_records(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [
            {"id": 7, "prompt": "Name a prime.", "rubric": [{"text": "Names a prime.", "weight": 2}]},
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "rubrics": [{"criterion": "Greets.", "weight": 1.5}],
            },
            {
                "prompt": "Add 2+2.",
                "rubric": [{"id": "sum", "criterion": "Says 4.", "points": -1, "tags": ["t"]}],
            },
        ],
    )
    res = load_examples(path)
    assert res.format == "generic"
    assert [ex.id for ex in res.examples] == ["7", "line-2", "line-3"]
    assert res.examples[0].prompt == [{"role": "user", "content": "Name a prime."}]
    assert res.examples[1].points == [1.5]
    assert res.examples[2].rubric[0].id == "sum" and res.examples[2].rubric[0].polarity == "negative"


# -------------------------------------------------------------------------------------------- containers
def test_json_list_reports_the_record_line(tmp_path):
    good = {"prompt": "A?", "rubric": [{"criterion": "x", "points": 1}]}
    bad = {"prompt": "B?", "rubric": [{"criterion": "y", "points": "5"}]}
    path = tmp_path / "d.json"
    path.write_text("[\n" + json.dumps(good, indent=1) + ",\n" + json.dumps(bad, indent=1) + "\n]\n")
    bad_line = 2 + json.dumps(good, indent=1).count("\n") + 1
    with pytest.raises(DataError) as err:
        load_examples(path)
    assert (
        str(err.value) == f'{path}:{bad_line}: rubric[0].points: wrong type: expected a number, got str "5"'
    )
    assert len(load_examples(path, on_error="skip").examples) == 1


def test_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in (FIXTURES / "rar_sample.jsonl").read_text().splitlines()]
    records[2]["rubric"][0]["weight"] = None  # becomes a missing weight in row 2
    path = tmp_path / "rar.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    res = load_examples(path, on_error="skip")
    assert res.format == "rar" and [e.id for e in res.examples] == ["row-0", "row-1"]
    assert res.examples[1].points == [5, 3, 2, -1, -2]
    assert [str(i) for i in res.skipped] == [f"{path}:row 2: rubric[0].weight: missing"]


def test_hf_save_to_disk_and_data_folder(tmp_path):
    import datasets

    records = [json.loads(line) for line in (FIXTURES / "rubrichub_sample.jsonl").read_text().splitlines()]
    for r in records:  # a uniform schema for arrow
        r["prompt"] = (
            r["prompt"] if isinstance(r["prompt"], list) else [{"role": "user", "content": r["prompt"]}]
        )
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "saved"))
    res = load_examples(tmp_path / "saved")
    assert [e.points for e in res.examples] == [[8, 6, 4], [9, 7]]
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", records)
    res2 = load_examples(folder, split="train")
    assert [e.prompt for e in res2.examples] == [e.prompt for e in res.examples]


def test_hub_unreachable_message():
    code = "from rgsd.data import load_examples\nload_examples('someorg/no-such-rubrics')"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "DataError: someorg/no-such-rubrics: file: the Hugging Face hub is unreachable" in last
    assert "pass a local path" in last


# ------------------------------------------------------------------------------------- errors and modes
def test_strict_lists_all_problems_and_skip_keeps_good_records():
    path = FIXTURES / "planted_defects.jsonl"
    with pytest.raises(DataError) as err:
        load_examples(path)
    lines = str(err.value).splitlines()
    end = len(path.read_text().splitlines()[1]) + 1  # the truncated record ends early
    assert lines[0] == f"{path}:2: record: malformed JSON: Expecting value (column {end})"
    assert len(lines) == len(err.value.issues) == 12  # every load problem of the file
    assert isinstance(err.value, ValueError)
    res = load_examples(path, on_error="skip")
    assert len(res.examples) == 8 and res.skipped_records == 12
    assert sorted({i.line for i in res.skipped}) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 18, 20]


def test_strict_message_caps_the_list(tmp_path):
    good = {"prompt": "Q", "rubric": [{"criterion": "x", "points": 1}]}
    path = write_jsonl(tmp_path / "many.jsonl", [good] + [{"prompt": "", "rubric": good["rubric"]}] * 25)
    with pytest.raises(DataError) as err:
        load_examples(path)
    text = str(err.value).splitlines()
    assert text[0] == f"{path}:2: prompt: empty prompt" and text[-1] == "... and 5 more problems"
    assert len(text) == 21 and len(err.value.issues) == 25


def test_limit_and_whole_file_errors(tmp_path):
    assert len(load_examples(hb_file("healthbench_val500.jsonl"), limit=3).examples) == 3
    with pytest.raises(DataError, match="file: not found"):
        load_examples(tmp_path / "missing.jsonl")
    path = write_jsonl(tmp_path / "odd.jsonl", [{"foo": 1}, {"bar": 2}])
    with pytest.raises(DataError, match=r"odd.jsonl:1: format: cannot detect the format"):
        load_examples(path)
    with pytest.raises(DataError, match="unknown format 'xml'"):
        load_examples(path, format="xml")
    named = load_examples(FIXTURES / "rubrichub_sample.jsonl", format="generic")
    assert [e.points for e in named.examples] == [[8, 6, 4], [9, 7]]
    with pytest.raises(DataError, match="question: missing"):
        load_examples(FIXTURES / "rubrichub_sample.jsonl", format="rar")


def test_polarity_overrides():
    path = FIXTURES / "rar_sample.jsonl"
    res = load_examples(
        path, polarity_overrides={"line-1/c4": "positive", "line-2": "positive", "nope/c1": "negative"}
    )
    assert res.examples[0].points == [5, 5, 4, 1, 2, -1]
    assert res.examples[1].points == [5, 3, 2, 1, 2]  # example-level key: its negative-weight criteria
    assert res.unused_overrides == ["nope/c1"]
    with pytest.raises(DataError, match="must be 'positive' or 'negative'"):
        load_examples(path, polarity_overrides={"line-1": "good"})


def test_examples_are_plain_schema_objects():
    ex = load_examples(FIXTURES / "canonical_sample.jsonl").examples[0]
    assert isinstance(ex, Example) and ex.points == [5.0, -8.0, 2.0]


def test_non_utf8_json_list_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n  {"id": "a",\n   "prompt": "caf\xe9"}\n]\n')
    with pytest.raises(DataError, match=r"d.json:3: encoding: not UTF-8 \(byte 0xe9 at column 18\)"):
        load_examples(path)
