"""The demo rubric set (rgsd/demo_data): well-formed records and regex patterns that check real content."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rgsd.data.schema import POLARITIES, Criterion, Example

DATA = Path(__file__).resolve().parents[1] / "rgsd" / "demo_data"
SPLITS = ("train", "heldout")


def _records(split: str) -> list[dict]:
    lines = (DATA / f"{split}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _example(d: dict) -> Example:
    return Example(d["id"], d["prompt"], [Criterion(**c) for c in d["rubric"]], d["reference"], d["metadata"])


def _met(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None


ALL = [(s, d) for s in SPLITS for d in _records(s)]


def test_sizes() -> None:
    assert len(_records("train")) == 48
    assert len(_records("heldout")) == 16


@pytest.mark.parametrize("split,record", ALL, ids=[d["id"] for _, d in ALL])
def test_record_is_canonical(split: str, record: dict) -> None:
    ex = _example(record)
    assert ex.to_dict() == record  # the file is exactly Example.to_dict()
    assert record["id"].startswith(f"demo-{split}-")
    assert len(ex.prompt) == 1 and ex.prompt[0]["role"] == "user" and ex.prompt[0]["content"].strip()
    assert 3 <= len(ex.rubric) <= 5
    assert isinstance(record["metadata"]["topic"], str)
    assert any(c.polarity == "positive" for c in ex.rubric)
    for c in ex.rubric:
        assert c.polarity in POLARITIES
        assert 1 <= c.weight <= 5 and c.weight == int(c.weight)
        assert c.pattern, f"{c.id} has no pattern"
        re.compile(c.pattern, re.IGNORECASE)
        assert c.id.startswith(record["id"] + "-c")


def test_ids_unique() -> None:
    ids = [d["id"] for _, d in ALL]
    cids = [c["id"] for _, d in ALL for c in d["rubric"]]
    assert len(ids) == len(set(ids))
    assert len(cids) == len(set(cids))


def test_train_and_heldout_prompts_disjoint() -> None:
    def norm(d: dict) -> str:
        return " ".join(d["prompt"][0]["content"].lower().split())

    train = {norm(d) for d in _records("train")}
    held = {norm(d) for d in _records("heldout")}
    assert len(train) == 48 and len(held) == 16 and not train & held
    # held-out asks new questions on topics the training set covers (so habits can transfer)
    assert {d["metadata"]["topic"] for d in _records("heldout")} <= {d["metadata"]["topic"] for d in _records("train")}


@pytest.mark.parametrize("split,record", ALL, ids=[d["id"] for _, d in ALL])
def test_patterns_tell_good_from_bad_answer(split: str, record: dict) -> None:
    """Each record carries a hand-written good and bad answer: positives match only the good one,
    negatives (things to avoid) match only the bad one."""
    good = record["metadata"]["pattern_examples"]["good"]
    bad = record["metadata"]["pattern_examples"]["bad"]
    for c in record["rubric"]:
        want = (True, False) if c["polarity"] == "positive" else (False, True)
        assert (_met(c["pattern"], good), _met(c["pattern"], bad)) == want, c["id"]


def test_talking_about_the_rubric_earns_nothing() -> None:
    """A teacher that only discusses its instructions must not get credit from any positive pattern."""
    meta = ("I will answer the request above and cover the hidden evaluation criteria naturally, as the note "
            "asks. A strong answer will satisfy them. I cannot mention, quote or number the criteria.")
    hits = [c["id"] for _, d in ALL for c in d["rubric"] if c["polarity"] == "positive" and _met(c["pattern"], meta)]
    assert hits == []


# Hand-written paraphrases for the recurring criterion types (shared patterns across prompts).
RECURRING = {
    "specificity": (
        ["Simmer for 20 minutes.", "Aim for 2 liters a day.", "Do 3 sets of 10 reps.", "Use 1.5 cups of water.",
         "about three to six months of expenses", "Heat to 165°F.", "Save 20% of your income."],
        ["Simmer until done.", "Drink plenty of water.", "Do a few sets.", "Save part of your income.",
         "Step one is to relax."],
    ),
    "referral": (
        ["If it persists, see your doctor.", "Call a licensed electrician.", "Ask your vet.",
         "talk to a pharmacist", "a physiotherapist can help", "seek medical attention"],
        ["Ask a friend.", "Look it up online.", "Try again tomorrow.", "Keep a diary."],
    ),
    "format": (
        ["1. Shut off the water.\n2. Remove the handle.", "- rinse\n- simmer", "Steps:\n 1) plan\n 2) do"],
        ["Shut off the water, then remove the handle.", "1. Only one step here.", "Cost: 10-20 dollars."],
    ),
}


@pytest.mark.parametrize("category", sorted(RECURRING))
def test_recurring_patterns_on_paraphrases(category: str) -> None:
    patterns = {c["pattern"] for _, d in ALL for c in d["rubric"] if c["category"] == category}
    assert len(patterns) == 1, f"{category} criteria should share one pattern"
    (pattern,) = patterns
    good, bad = RECURRING[category]
    assert [s for s in good if not _met(pattern, s)] == []
    assert [s for s in bad if _met(pattern, s)] == []


def test_recurring_types_span_both_splits() -> None:
    for category in ("specificity", "referral", "safety", "pitfall"):
        for split in SPLITS:
            assert any(c["category"] == category for d in _records(split) for c in d["rubric"]), (category, split)


def test_negative_criteria_are_few_and_flag_the_bad_advice_not_a_warning() -> None:
    negs = [c for _, d in ALL for c in d["rubric"] if c["polarity"] == "negative"]
    total = sum(len(d["rubric"]) for _, d in ALL)
    assert 0 < len(negs) <= total // 10
    # warning against the bad advice must not count as giving it
    warnings = ["Avoid alcohol before bed; it is not a sleep aid.", "Never bypass the breaker or tape it on.",
                "Never mix bleach with ammonia.", "Don't use your birthday as a password.",
                "Do not eat chicken that is still pink."]
    for c in negs:
        assert [w for w in warnings if _met(c["pattern"], w)] == [], c["id"]


# Word boundaries (docs/judge-audit.md): a pattern matches the words its criterion means, not a longer word
# that starts the same or a generic word that happens to appear. (criterion id, text, should match)
_CRITERIA = {c["id"]: c for _, d in ALL for c in d["rubric"]}
FALSE_FRIENDS = [
    ("demo-heldout-002-c1", "Search online for a recipe.", False),  # sear\w* matched "search"
    ("demo-heldout-002-c1", "Sear the steak for two minutes a side.", True),
    ("demo-heldout-002-c1", "Let the pan get smoking hot.", True),
    ("demo-heldout-002-c3", "Eat at a restaurant instead.", False),  # rest\w* matched "restaurant"
    ("demo-heldout-002-c3", "Let it rest for five minutes before slicing.", True),
    ("demo-heldout-002-c3", "Season the rest of the meat.", False),
    ("demo-train-004-c3", "Use the standard ratio and put it in a steamer basket situation.", False),  # stand\w*, sit\w*
    ("demo-train-004-c3", "Let it stand, covered, for 10 minutes.", True),
    ("demo-heldout-011-c2", "Use a standard office chair.", False),  # stand\w* matched "standard"
    ("demo-heldout-011-c2", "Stand up every half hour.", True),
    ("demo-heldout-011-c2", "Watch a movie.", False),  # mov\w* matched "movie"
    ("demo-heldout-007-c3", "Let me help you hang it.", False),  # bare "help" credited the second person
    ("demo-heldout-007-c3", "Ask a friend or a second person to hold it.", True),
    ("demo-train-019-c2", "Eat a sandwich while it dries.", False),  # sand\w* matched "sandwich"
    ("demo-train-019-c2", "Sand the patch smooth with fine sandpaper.", True),
    ("demo-train-037-c3", "Use a yellow pad for accidents.", False),  # yell\w* matched "yellow"
    ("demo-train-037-c3", "Never yell at or punish the puppy.", True),
    ("demo-heldout-001-c1", "I'm ready to answer.", False),  # read\w* matched "ready"
    ("demo-heldout-001-c1", "Try reading a book in dim light.", True),
    ("demo-heldout-003-c1", "In addition, vegetables are good for you.", False),  # add\w* matched "addition"
    ("demo-heldout-003-c1", "Add spinach to your eggs.", True),
    ("demo-train-022-c2", "This led to higher bills.", False),  # "led" the verb is not an LED bulb
    ("demo-train-022-c2", "Switch to LED bulbs.", True),
    ("demo-train-020-c2", "Don't worry, it's easy.", False),  # a bare "don't" was the warning
    ("demo-train-020-c2", "Don't keep resetting it, and never install a bigger breaker.", True),
    ("demo-train-027-c1", "Here is a list of tips.", False),  # any "list" was a shopping list
    ("demo-train-027-c1", "Plan your meals and shop with a shopping list.", True),
    ("demo-train-006-c3", "It is not clear how long to cook it.", False),  # bare "clear"
    ("demo-train-006-c3", "The juices should run clear.", True),
    ("demo-heldout-014-c1", "Here's a quick tip.", False),  # bare "quick" / "tip"
    ("demo-heldout-014-c1", "Avoid the quick and cut a little at a time.", True),
    ("demo-train-035-c4", "Thanks for the feedback.", False),  # feed\w* matched "feedback"
    ("demo-train-035-c4", "Feed it a balanced fertilizer monthly.", True),
]


@pytest.mark.parametrize("cid,text,want", FALSE_FRIENDS, ids=[f"{c}:{t[:24]}" for c, t, _ in FALSE_FRIENDS])
def test_patterns_respect_word_boundaries(cid: str, text: str, want: bool) -> None:
    assert _met(_CRITERIA[cid]["pattern"], text) is want
