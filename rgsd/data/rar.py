"""RaR rubric categories and the polarity policy shared by every loader.

RaR ("Rubrics as Rewards") writes a criterion's category as a prefix of its description, e.g.
``"Essential Criteria: States the diagnosis"``. Released data has typos in that prefix ("Essential Critical:",
"Important Crieria:", "Pitfal Criteria", a missing colon, odd case); :func:`parse_category` tolerates them.

Polarity. A signed weight alone does not say what *meeting* a criterion means: RaR-Science pitfalls are mostly
phrased "Avoids X" (met = good) while RaR-Medicine pitfalls are mostly "Does not mention X" (met = bad), yet
both carry negative weights. The policies:

* ``"sign"`` (default): a negative weight means a penalty criterion: meeting it costs ``|w|`` points
  (HealthBench's convention, correct for HealthBench and RaR-Medicine).
* ``"avoid-positive"``: a negative-weight criterion whose text *describes good behaviour* (see
  :func:`describes_good_behaviour`) becomes a positive criterion worth ``|w|`` (what RaR-Science pitfalls mean);
  every other negative weight stays a penalty.

Loaders additionally apply user overrides keyed by ``"<example_id>/<criterion_id>"`` (that criterion) or
``"<example_id>"`` (every negative-weight criterion of that example).
"""

from __future__ import annotations

import difflib
import re

CATEGORIES: tuple[str, ...] = ("essential", "important", "optional", "pitfall")
POLARITY_POLICIES: tuple[str, ...] = ("sign", "avoid-positive")
DEFAULT_POLICY = "sign"

# "<category word> [<criteria-like word>] [: or -]" at the start of a description. The category word is
# matched fuzzily below; the second word must start with "cr" ("Criteria", "Critical", "Crieria", ...).
_PREFIX = re.compile(
    r"^\s*(?P<cat>[A-Za-z]+)(?:\s+(?P<kind>cr[A-Za-z]*))?\s*(?P<colon>[:\-\u2013\u2014])?\s*", re.IGNORECASE
)

# Openers that describe desirable behaviour. Meeting such a criterion is good, so a negative weight on it is
# suspicious (lint) or, under "avoid-positive", means "worth |w| when met". Deliberately NOT included: a bare
# "Does not ..." -- HealthBench (171 negative items) and RaR-Medicine use "Does not mention/include X" for an
# omission, i.e. a failure. Only "does not" followed by an error word ("does not incorrectly claim",
# "does not confuse") describes avoiding a mistake.
_NEGATION = r"(?:does\s+not|doesn['\u2019]t|do\s+not|don['\u2019]t|did\s+not|didn['\u2019]t)"
_ERROR_WORDS = (
    r"(?:incorrectly|falsely|wrongly|erroneously|mistakenly|inappropriately|unnecessarily|"
    r"confuse|conflate|misstate|misrepresent|misidentify|misinterpret|misclassify|mislabel|miscalculate|"
    r"overstate|exaggerate|fabricate|invent|hallucinate|contradict|claim|assert|imply)"
)
_GOOD_BEHAVIOUR = re.compile(
    rf"^\W*(?:avoid(?:s|ing|ed)?\b|refrain(?:s|ing|ed)?\b|never\b|steers?\s+clear\b|"
    rf"(?:correctly|accurately|appropriately|properly|rightly)\b|{_NEGATION}\s+{_ERROR_WORDS}\b)",
    re.IGNORECASE,
)
# Openers that describe a failure; a positive weight on them is suspicious. "Does not include X" is left out on
# purpose: HealthBench has positive "Does not include a detailed explanation ..." items (a conciseness reward).
_FAILURE = re.compile(
    r"^\W*(?:fail(?:s|ed|ing)?\s+to\b|omits?\b|omitting\b|neglects?\b|overlooks?\b|misses\b|"
    r"incorrectly\b|falsely\b|wrongly\b|erroneously\b|mistakenly\b)",
    re.IGNORECASE,
)


def describes_good_behaviour(text: str) -> bool:
    """True when ``text`` opens like a desirable behaviour ("Avoids ...", "Correctly ...", "Never ...")."""
    return bool(_GOOD_BEHAVIOUR.match(text))


def describes_failure(text: str) -> bool:
    """True when ``text`` opens like a failure ("Fails to ...", "Omits ...", "Incorrectly ...")."""
    return bool(_FAILURE.match(text))


def _category_word(word: str) -> str | None:
    word = word.lower()
    if word in CATEGORIES:
        return word
    # Typos such as "pitfal", "esential", "importnat", "optinal": closest category, if close enough.
    close = difflib.get_close_matches(word, CATEGORIES, n=1, cutoff=0.75)
    return close[0] if close else None


def parse_category(description: str) -> tuple[str | None, str]:
    """Split a RaR description into ``(category, text without the prefix)``.

    Returns ``(None, description.strip())`` when there is no recognizable prefix. A prefix is a category word
    (typos tolerated) followed by a criteria-like word and/or a colon; a bare word without either (e.g.
    "Important details ...") is ordinary text, not a prefix.
    """
    m = _PREFIX.match(description)
    if m and (m.group("kind") or m.group("colon")):
        category = _category_word(m.group("cat"))
        kind = m.group("kind")
        kind_ok = kind is None or difflib.SequenceMatcher(None, kind.lower(), "criteria").ratio() >= 0.6
        if category and kind_ok:
            return category, description[m.end() :].strip()
    return None, description.strip()


def decide_polarity(signed_weight: float, text: str, policy: str = DEFAULT_POLICY) -> tuple[float, str]:
    """Map a signed weight and the criterion text to ``(weight magnitude, polarity)`` under ``policy``."""
    if policy not in POLARITY_POLICIES:
        raise ValueError(
            f"unknown polarity policy {policy!r} (expected one of {', '.join(POLARITY_POLICIES)})"
        )
    magnitude = abs(float(signed_weight))
    if signed_weight >= 0:
        return magnitude, "positive"
    if policy == "avoid-positive" and describes_good_behaviour(text):
        return magnitude, "positive"
    return magnitude, "negative"
