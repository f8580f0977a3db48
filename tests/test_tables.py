"""CSV, TSV and hub-style dataset folders: read through ``datasets``, every problem named FILE:LINE: field."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgsd.cli import main
from rgsd.data import DataError, load_examples

RUBRIC = [{"criterion": "Mentions the fridge", "points": 3}, {"criterion": "Claims it keeps forever", "points": -2}]
BAD_RUBRIC = '[{"criterion": "Mentions the fridge" "points": 3}]'  # a comma missing


@pytest.fixture(autouse=True, scope="module")
def _own_datasets_cache(tmp_path_factory):
    """Folder configurations are resolved by ``datasets``, which leaves lock files in its cache: keep them here."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-cache"))
        yield


def write_csv(path: Path, rows: list[list], delimiter: str = ",") -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    for row in rows:
        writer.writerow([c if isinstance(c, str) else json.dumps(c) for c in row])
    path.write_text(buf.getvalue())
    return path


# ------------------------------------------------------------------------------------------------------ CSV
def test_csv_rows_decode_json_cells_and_count_lines(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rice?"}]
    path = write_csv(tmp_path / "r.csv", [["id", "prompt", "rubric"], ["q1", "How do I store soup?", RUBRIC],
                                          ["q2", messages, RUBRIC], ["q3", "[Note] text that starts with a bracket",
                                                                     RUBRIC]])
    result = load_examples(path)
    assert result.format == "rubrichub"
    assert [ex.id for ex in result.examples] == ["q1", "q2", "q3"]
    assert result.examples[1].prompt == messages
    assert result.examples[2].prompt[0]["content"] == "[Note] text that starts with a bracket"
    assert [(c.text, c.weight, c.polarity) for c in result.examples[0].rubric] == [
        ("Mentions the fridge", 3.0, "positive"), ("Claims it keeps forever", 2.0, "negative")]
    assert [s.where for s in result.sources] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_csv_bad_rubric_cell_names_its_line_and_field(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [["prompt", "rubric"], ["Fine", RUBRIC], ["Broken", BAD_RUBRIC],
                                            ["Wrong weight", [{"criterion": "x", "points": "three"}]]])
    with pytest.raises(DataError) as err:
        load_examples(path)
    assert str(err.value).splitlines() == [
        f"{path}:3: rubric: the cell is not valid JSON: Expecting ',' delimiter (column 38)",
        f'{path}:4: rubric[0].points: wrong type: expected a number, got str "three"',
    ]
    kept = load_examples(path, on_error="skip")
    assert len(kept.examples) == 1 and kept.skipped_records == 2


def test_csv_quoted_multiline_cell_counts_from_the_record_start(tmp_path):
    path = write_csv(tmp_path / "multi.csv", [["prompt", "rubric"], ["line one\nline two\n\nline four", RUBRIC],
                                              ["Next", BAD_RUBRIC]])
    result = load_examples(path, on_error="skip")
    assert result.examples[0].prompt[0]["content"] == "line one\nline two\n\nline four"
    assert result.sources[0].line == 2
    assert [(i.line, i.field) for i in result.skipped] == [(6, "rubric")]  # lines 2-5 hold the first record


def test_tsv(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("id\tquestion\trubric\n"
                    f"a\tIs it safe, really?\t{json.dumps(RUBRIC)}\n"
                    f"b\tSecond\t{BAD_RUBRIC}\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: rubric: the cell is not valid JSON")):
        load_examples(path, columns={"prompt": "question"})
    result = load_examples(path, columns={"prompt": "question"}, on_error="skip")
    assert [(ex.id, ex.prompt[0]["content"]) for ex in result.examples] == [("a", "Is it safe, really?")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('prompt,rubric\n"never closed,[]\nmore\n', ":2: record: a quoted cell of this record is never closed (the file ends inside it, line 3)"),
        ("prompt,rubric\nA,[],extra\n", ":2: record: 3 cells, but the header has 2"),
        ("prompt,rubric\n\nA\n", ":3: record: 1 cells, but the header has 2"),
        ('prompt,rubric\n"closed" then text,[]\n', ":2: record: malformed CSV: ',' expected after '\"'"),
        ("prompt,prompt\nA,B\n", ":1: header: column name 'prompt' is used twice"),
        ("prompt,,rubric\nA,B,C\n", ":1: header: column 2 has no name"),
        ("prompt,rubric\n", ":1: file: no records (only a header)"),
        ("\n\n", ":1: file: empty: a CSV file needs a header line"),
        ("prompt,rubric\nA,\n", ":2: rubric: missing"),
        ("prompt,rubric\nA,{}\n", ":2: format: cannot detect the format"),
        ("prompt,rubric\nA,[]\n", ":2: rubric: empty: a record needs at least one criterion"),
        ("prompt,rubric\n\"[{\"\"role\"\": \"\"user\"\"\",[]\n", ":2: prompt: the cell is not valid JSON"),
    ],
)
def test_csv_problems_are_named_by_line(tmp_path, text, expected):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        load_examples(path, format="rubrichub" if "missing" in expected else "auto")
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_csv_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"prompt,rubric\nCaf\xe9,[]\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: encoding: not UTF-8 (byte 0xe9 at column 4)")):
        load_examples(path)


CELL = st.text(alphabet=st.sampled_from(list('ab ,;\t"\n\r[]{}:\\') + ["é", "\x00"]), max_size=12)
COLUMN = st.sampled_from(["prompt", "rubric", "id", "question", "x", "prompt", "rubric", "", "prompt "])
_names = itertools.count()


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """CSV text, well quoted or not: random cells and columns, sometimes a valid rubric or messages cell."""
    columns = draw(st.lists(COLUMN, min_size=1, max_size=4, unique=draw(st.booleans())))
    cell = st.one_of(CELL, st.just(json.dumps(RUBRIC)), st.just('[{"role": "user", "content": "hi"}]'))
    width = st.sampled_from([len(columns)] * 4 + [len(columns) - 1, len(columns) + 1])  # mostly the header's
    rows = draw(st.lists(width.flatmap(lambda w: st.lists(cell, min_size=w, max_size=w)), max_size=4))
    if draw(st.booleans()):  # quoted as a CSV writer quotes
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
        writer.writerows([columns, *rows])
        return buf.getvalue()
    return "".join(",".join(r) + draw(st.sampled_from(["\n", "\r\n", "\r", ""])) for r in [columns, *rows])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_texts())
def test_any_csv_text_loads_or_names_a_line(tmp_path, text):
    path = tmp_path / f"h{next(_names)}.csv"  # a new name each time: nothing may be served from an old read
    path.write_text(text, encoding="utf-8", newline="")
    try:
        result = load_examples(path, on_error="skip")
    except DataError as err:
        assert err.issues and all(i.line is not None and i.file == str(path) for i in err.issues), str(err)
        assert re.match(rf"{re.escape(str(path))}:\d+: ", str(err)), str(err)
    else:
        assert all(s.file == str(path) and s.line >= 2 for s in result.sources)
        assert all(i.line is not None and i.line >= 2 for i in result.skipped)


# ------------------------------------------------------------------------------------------ hub-style folders
def _rec(prompt: str, points: object = 3) -> dict:
    return {"prompt": prompt, "rubric": [{"criterion": f"Answers {prompt}", "points": points}]}


@pytest.fixture
def hub_folder(tmp_path) -> Path:
    """Two configurations (JSON Lines and CSV) with two splits each, declared in README.md front matter."""
    root = tmp_path / "hubset"
    (root / "plain").mkdir(parents=True)
    (root / "tables").mkdir()
    (root / "plain" / "train.jsonl").write_text("".join(json.dumps(_rec(p)) + "\n" for p in ["p1", "p2"]))
    (root / "plain" / "test.jsonl").write_text(json.dumps(_rec("p3")) + "\n" + json.dumps(_rec("p4", "x")) + "\n")
    write_csv(root / "tables" / "train.csv", [["prompt", "rubric"], ["t1", _rec("t1")["rubric"]],
                                             ["t2\nsecond line", _rec("t2")["rubric"]]])
    write_csv(root / "tables" / "test.csv", [["prompt", "rubric"], ["t3", BAD_RUBRIC]])
    front = ["---", "configs:"]
    for config, ext in (("plain", "jsonl"), ("tables", "csv")):
        front += [f"- config_name: {config}", "  data_files:"]
        front += [f"  - split: {s}\n    path: {config}/{s}.{ext}" for s in ("train", "test")]
    (root / "README.md").write_text("\n".join([*front, "---", "# A rubric set", ""]))
    return root


def test_hub_folder_configurations_and_splits(hub_folder):
    def prompts(config: str, split: str) -> list[str]:
        return [ex.prompt[0]["content"] for ex in load_examples(hub_folder, config_name=config, split=split,
                                                                on_error="skip").examples]

    assert prompts("plain", "train") == ["p1", "p2"]
    assert prompts("plain", "test") == ["p3"]
    assert prompts("tables", "train") == ["t1", "t2\nsecond line"]
    with pytest.raises(DataError) as err:
        load_examples(hub_folder, config_name="plain", split="test")
    assert str(err.value) == f'{hub_folder}/plain/test.jsonl:2: rubric[0].points: wrong type: expected a number, got str "x"'
    with pytest.raises(DataError, match=re.escape(f"{hub_folder}/tables/test.csv:2: rubric: the cell is not valid JSON")):
        load_examples(hub_folder, config_name="tables", split="test")


@pytest.mark.parametrize(
    ("config", "split", "expected"),
    [
        (None, "train", "dataset_config: several configurations (plain, tables); pass one with --dataset-config"),
        ("other", "train", "dataset_config: no configuration 'other' (available: plain, tables)"),
        ("plain", None, "split: several splits (train, test); pass one with --split"),
        ("plain", "validation", "split: no split 'validation' (available: train, test)"),
    ],
)
def test_hub_folder_choices_are_named(hub_folder, config, split, expected):
    with pytest.raises(DataError) as err:
        load_examples(hub_folder, config_name=config, split=split)
    assert str(err.value) == f"{hub_folder}: {expected}"


def test_folder_layouts_without_front_matter(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # data/<split>-*.parquet: two shards, each numbered by its own rows; default ids say which shard
    shards = tmp_path / "sharded"
    (shards / "data").mkdir(parents=True)
    for i in range(2):
        pq.write_table(pa.Table.from_pylist([_rec(f"s{i}a"), _rec(f"s{i}b")]), shards / "data" / f"train-0000{i}-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist([_rec("v")]), shards / "data" / "test-00000-of-00001.parquet")
    result = load_examples(shards, split="train")
    assert [ex.prompt[0]["content"] for ex in result.examples] == ["s0a", "s0b", "s1a", "s1b"]
    assert result.sources[3].where == f"{shards}/data/train-00001-of-00002.parquet:row 1"
    assert result.examples[3].id == "data/train-00001-of-00002.parquet:row-1"
    assert load_examples(shards, split="test").examples[0].id == "row-0"  # one file: ids as for that file

    # <config>/<split>.jsonl: the subfolder is the configuration
    nested = tmp_path / "nested"
    for config in ("easy", "hard"):
        (nested / config).mkdir(parents=True)
        for split in ("train", "test"):
            (nested / config / f"{split}.jsonl").write_text(json.dumps(_rec(f"{config}-{split}")) + "\n")
    for config, split in itertools.product(("easy", "hard"), ("train", "test")):
        ex = load_examples(nested, config_name=config, split=split).examples
        assert [e.prompt[0]["content"] for e in ex] == [f"{config}-{split}"]
    with pytest.raises(DataError, match=r"several subfolders \(easy, hard\); pass the one to read with --dataset-config"):
        load_examples(nested, split="train")
    with pytest.raises(DataError, match=r"no configuration 'medium' \(available: subfolders: easy, hard\)"):
        load_examples(nested, config_name="medium", split="train")


def test_config_still_refused_for_one_file(tmp_path):
    path = write_csv(tmp_path / "one.csv", [["prompt", "rubric"], ["A", RUBRIC]])
    with pytest.raises(DataError, match="config_name: a dataset configuration name applies only to a hub dataset"):
        load_examples(path, config_name="x")


def test_lint_and_convert_read_csv_and_folders(hub_folder, tmp_path, capsys):
    assert main(["data", "lint", str(hub_folder), "--dataset-config", "tables", "--split", "train"]) == 0
    assert "2 examples, 2 criteria" in capsys.readouterr().out
    assert main(["data", "lint", str(hub_folder), "--dataset-config", "tables", "--split", "test"]) == 1
    assert f"{hub_folder}/tables/test.csv:2: rubric: the cell is not valid JSON" in capsys.readouterr().out
    out = tmp_path / "train.jsonl"
    assert main(["data", "convert", str(hub_folder / "tables" / "train.csv"), str(out)]) == 0
    assert [json.loads(line)["prompt"] for line in out.read_text().splitlines()] == [
        [{"role": "user", "content": "t1"}], [{"role": "user", "content": "t2\nsecond line"}]]


def test_folder_options_and_files_only_datasets_reads(tmp_path):
    import gzip

    # a configuration's own CSV options (here sep) apply to its files
    semi = tmp_path / "semicolons"
    semi.mkdir()
    write_csv(semi / "train.csv", [["prompt", "rubric"], ["Spaghetti; how long?", RUBRIC]], delimiter=";")
    (semi / "README.md").write_text('---\nconfigs:\n- config_name: default\n  sep: ";"\n  data_files:\n'
                                    "  - split: train\n    path: train.csv\n---\n")
    assert load_examples(semi).examples[0].prompt[0]["content"] == "Spaghetti; how long?"
    # compressed files: datasets reads the split, records are numbered by row of the folder
    packed = tmp_path / "packed"
    (packed / "data").mkdir(parents=True)
    lines = json.dumps(_rec("a")) + "\n" + json.dumps(_rec("b", "x")) + "\n"
    (packed / "data" / "train.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    with pytest.raises(DataError, match=re.escape(f"{packed}:row 1: rubric[0].points: wrong type")):
        load_examples(packed)
