"""rgsd/options.py, the one configuration mechanism: flags from dataclasses in both spellings, no abbreviations,
YAML files that flags override, did-you-mean, deprecated names, ``none`` for optional numbers, role prefixes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from rgsd.judges.options import JudgeOptions
from rgsd.options import (
    CommandParser,
    ConfigError,
    OptionError,
    add_command,
    arg,
    build,
    config_markdown,
    field_values,
    options,
    prefixed,
    unprefixed,
)


@dataclass
class Opts:
    DEPRECATED: ClassVar[dict] = {"steps": "max_steps", "sched": ("schedule", {"old": "new"})}

    max_steps: int = arg(10, "Optimizer steps.")
    rate: float | None = arg(None, "A rate, or none.")
    schedule: Literal["new", "other"] = arg("new", "A schedule.")
    names: list[str] = arg(["a"], "Some names.")
    repeated: list[str] = field(default_factory=list, metadata={"help": "FIELD=VALUE.", "action": "append"})

    def validate(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")


def command(*types: type) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rgsd", allow_abbrev=False)
    sub = top.add_subparsers(dest="command", parser_class=CommandParser)
    add_command(sub, "run", list(types or [Opts]), func=lambda a: 0, help="a command")
    return top


def parse(argv: list[str], *types: type) -> argparse.Namespace:
    return command(*types).parse_args(["run", *argv])


@pytest.mark.parametrize("flag", ["--max_steps", "--max-steps"])
def test_both_spellings_name_one_field(flag):
    assert options(parse([flag, "4"]), Opts).max_steps == 4
    assert options(parse([f"{flag}=5"]), Opts).max_steps == 5


def test_an_abbreviation_is_refused_with_did_you_mean(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--max-step", "4"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments: --max-step 4" in err and "did you mean --max_steps" in err
    # the judge's case: --judge-mod is not --judge-mode (nor --judge-model)
    with pytest.raises(SystemExit) as exc:
        parse(["--judge-mod", "batched"], JudgeOptions)
    assert exc.value.code == 2 and "unrecognized arguments: --judge-mod" in capsys.readouterr().err
    assert options(parse(["--judge-mode", "batched"], JudgeOptions), JudgeOptions).judge_mode == "batched"


def test_yaml_then_flags_override_it(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_steps: 7\nrate: 1.0e-4\nnames: x,y\n")
    o = options(parse(["--config", str(cfg)]), Opts)
    assert (o.max_steps, o.rate, o.names) == (7, 1e-4, ["x", "y"])
    o = options(parse(["--config", str(cfg), "--max-steps", "3", "--names", "p", "q"]), Opts)
    assert (o.max_steps, o.rate, o.names) == (3, 1e-4, ["p", "q"])
    assert build(Opts, cfg, {"max-steps": "2"}).max_steps == 2  # the Python API: the same file, one override


def test_unknown_yaml_key_exits_2_with_did_you_mean(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_stepz: 7\n")
    with pytest.raises(OptionError) as exc:  # rgsd.cli.main prints it after the command's name and exits 2
        parse(["--config", str(cfg)])
    assert str(exc.value) == (f"{cfg}:1: unknown key 'max_stepz'; did you mean --max_steps? (`--help` lists every "
                              "field)") and exc.value.prog == "rgsd run"
    with pytest.raises(ConfigError, match="unknown key 'max_stepz'.*did you mean --max_steps"):
        build(Opts, cfg)
    cfg.write_text("max_steps: many\n")
    with pytest.raises(ConfigError, match="max_steps: expected int, got 'many'"):
        build(Opts, cfg)


def test_deprecated_name_warns_and_works(tmp_path):
    with pytest.warns(FutureWarning, match="'steps' is deprecated.*use 'max_steps'"):
        assert options(parse(["--steps", "6"]), Opts).max_steps == 6
    cfg = tmp_path / "old.yaml"
    cfg.write_text("steps: 8\nsched: old\n")
    with pytest.warns(FutureWarning) as caught:
        o = options(parse(["--config", str(cfg)]), Opts)
    assert (o.max_steps, o.schedule) == (8, "new")  # an old value is translated with its old name
    assert any("schedule: 'new' means what sched: 'old' meant" in str(w.message) for w in caught)
    with pytest.warns(FutureWarning, match="'sched' is deprecated"):
        assert options(parse(["--sched", "old"]), Opts).schedule == "new"
    with pytest.warns(FutureWarning, match="'sched' is deprecated"):
        assert options(parse(["--sched=other"]), Opts).schedule == "other"


def test_none_for_optional_numbers_and_a_bad_value_exits_2(capsys):
    assert options(parse(["--rate", "none"]), Opts).rate is None
    assert options(parse(["--rate", "null"]), Opts).rate is None
    assert options(parse(["--rate", "0.5"]), Opts).rate == 0.5
    assert build(Opts, None, {"rate": None}).rate is None
    with pytest.raises(SystemExit) as exc:
        parse(["--max-steps", "none"])  # not optional
    assert exc.value.code == 2 and "invalid int value: 'none'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="Opts: max_steps must be >= 1"):
        options(parse(["--max-steps", "0"]), Opts)


def test_a_repeated_flag_keeps_its_words_whole():
    o = options(parse(["--repeated", "a=1,2", "--repeated", "b=3"]), Opts)
    assert o.repeated == ["a=1,2", "b=3"] and field_values(o.repeated) == {"a": "1,2", "b": "3"}
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        field_values(["oops"])


def test_prefixed_roles():
    Eval = prefixed(JudgeOptions, "eval", judge="regex", only=["judge", "judge_model", "judge_mode"])
    args = parse(["--judge-model", "m1", "--eval-judge-model", "m2", "--eval-judge-mode", "batched"],
                 JudgeOptions, Eval)
    main, ev = options(args, JudgeOptions), unprefixed(args, JudgeOptions, "eval")
    assert (main.judge, main.judge_model, main.judge_mode) == ("openai", "m1", "per-criterion")
    assert (ev.judge, ev.judge_model, ev.judge_mode) == ("regex", "m2", "batched")
    assert not hasattr(args, "eval_judge_concurrency")  # only the fields asked for


def test_help_shows_every_field_with_its_default(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = capsys.readouterr().out
    assert "--max_steps MAX_STEPS, --max-steps MAX_STEPS" in out and "Optimizer steps. (default: 10)" in out
    assert "--config FILE" in out
    table = config_markdown(Opts)
    assert "| `max_steps` | `10` | Optimizer steps. |" in table and "`steps` -> `max_steps`" in table


# ---- property: any value read from a YAML file or a flag gives a value of the field's type or a ValueError ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rgsd.options import convert  # noqa: E402

FIELD_TYPES = [int, float, bool, str, int | None, float | None, list[str], list[int], Literal["a", "b"], dict]
ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(ANY_VALUE, st.sampled_from(FIELD_TYPES))
def test_convert_gives_the_field_type_or_a_value_error_naming_the_place(value, tp):
    try:
        out = convert(value, tp, "recipe.yaml: field")
    except ValueError as err:
        assert str(err).startswith("recipe.yaml: field"), err
        return
    if tp in (int, float, bool, str, dict):
        assert type(out) is tp
    elif tp in (int | None, float | None):
        assert out is None or type(out) is tp.__args__[0]
    elif tp == Literal["a", "b"]:
        assert out in ("a", "b")
    else:
        assert isinstance(out, list) and all(type(v) is tp.__args__[0] for v in out)
