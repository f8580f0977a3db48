"""The progress bars of the long commands (rgsd.progress): labelled tqdm bars on stderr, none unless asked."""

from __future__ import annotations

from rgsd.progress import bar, tracked


def test_no_bar_unless_asked(capsys):
    assert bar(False, 3, "generate", "batch") is None
    assert list(tracked(range(3), False, "generate", "batch")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_a_label_names_the_bar_and_every_item_comes_through(capsys):
    assert list(tracked(range(3), "probe: score", "score", "batch")) == [0, 1, 2]
    err = capsys.readouterr().err
    assert "probe: score" in err and "0/3" in err
    assert list(tracked([1, 2], True, "generate", "batch")) == [1, 2]
    assert "generate" in capsys.readouterr().err


def test_a_loop_that_breaks_closes_its_bar(capsys):
    for item in tracked(range(5), True, "judge", "response"):
        if item == 1:
            break
    assert "judge" in capsys.readouterr().err
