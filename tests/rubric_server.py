"""A scripted rubric generator on 127.0.0.1: the judge test server with a policy that writes rubrics.

What it answers depends on a marker word in the prompt being rubricated (so concurrent requests stay
deterministic):

* none: a good rubric of 8 criteria (2 Essential, 3 Important, 2 Optional, 1 Pitfall) built from the prompt;
* ``MALFORMED``: prose instead of JSON on the first request, a good rubric when re-asked;
* ``GARBAGE``: prose every time (the prompt fails after the re-asks);
* ``DUPLICATES``: the good rubric plus 4 restatements (case, punctuation, articles) of its items;
* ``COPIES``: the good rubric plus 2 criteria that quote 12 words of the reference answer;
* ``NOPOSITIVE``: only Pitfall criteria, every time;
* ``BADWEIGHT``: an Essential item weighted 2 first, a good rubric when re-asked;
* ``AVOIDS``: a Pitfall phrased "Avoids ..." first, a good rubric when re-asked.

``GeneratorServer(reject_response_format=True)`` answers HTTP 400 to any request carrying
``response_format``, like an endpoint without structured outputs.

Run it as a script for a stand-in generator: ``python tests/rubric_server.py --port 8090``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from judge_server import JudgeServer, Reply, serve_until_stopped  # noqa: E402

from rgsd.rubrics.prompts import PROMPT_END, PROMPT_START, REFERENCE_END, REFERENCE_START  # noqa: E402

GARBAGE_REPLY = "Here is a rubric: the answer should be accurate, clear and kind."


def read_generation_prompt(body: dict) -> tuple[str, str | None, bool]:
    """``(prompt text, reference or None, is a re-ask)`` of a generation request."""
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    prompt = user.split(PROMPT_START + "\n", 1)[1].split("\n" + PROMPT_END, 1)[0]
    ref = None
    if REFERENCE_START in user:
        ref = user.split(REFERENCE_START + "\n", 1)[1].split("\n" + REFERENCE_END, 1)[0]
    return prompt, ref, len(body["messages"]) > 2


def good_items(prompt: str) -> list[dict]:
    """Eight distinct criteria naming the prompt's words (deterministic)."""
    topic = " ".join(re.findall(r"[A-Za-z]+", prompt.split(":", 1)[-1])[:4]) or "the question"
    return [
        {"text": f"States the main fact about {topic}.", "category": "Essential", "weight": 5},
        {"text": f"Gives the correct answer to the question on {topic}.", "category": "Essential", "weight": 5},
        {"text": f"Explains why the answer about {topic} holds.", "category": "Important", "weight": 4},
        {"text": f"Mentions one practical consequence for {topic}.", "category": "Important", "weight": 3},
        {"text": f"Names a reliable source on {topic}.", "category": "Important", "weight": 3},
        {"text": f"Uses plain words when discussing {topic}.", "category": "Optional", "weight": 2},
        {"text": f"Keeps the reply on {topic} under 200 words.", "category": "Optional", "weight": 1},
        {"text": f"Claims that nothing is known about {topic}.", "category": "Pitfall", "weight": -2},
    ]


def restate(text: str) -> str:
    """The same criterion in other case and punctuation, with an article added: a near duplicate."""
    first, rest = text.split(" ", 1)
    return f"{first.upper()}   the {rest.rstrip('.')}!"


def rubric_policy(body: dict) -> str:
    prompt, ref, reask = read_generation_prompt(body)
    items = good_items(prompt)
    if "GARBAGE" in prompt or ("MALFORMED" in prompt and not reask):
        return GARBAGE_REPLY
    if "NOPOSITIVE" in prompt:
        items = [i for i in items if i["category"] == "Pitfall"] + [
            {"text": "Recommends a dangerous dose.", "category": "Pitfall", "weight": -1}
        ]
    elif "BADWEIGHT" in prompt and not reask:
        items[0]["weight"] = 2
    elif "AVOIDS" in prompt and not reask:
        items[-1]["text"] = "Avoids claiming that nothing is known."
    elif "DUPLICATES" in prompt:
        items += [dict(i, text=restate(i["text"])) for i in items[:4]]
    elif "COPIES" in prompt and ref:
        words = ref.split()
        items += [
            {"text": "Says that " + " ".join(words[:12]), "category": "Important", "weight": 3},
            {"text": "Notes that " + " ".join(words[-12:]), "category": "Optional", "weight": 1},
        ]
    return json.dumps({"criteria": items})


class GeneratorServer(JudgeServer):
    """The judge test server answering generation requests with :func:`rubric_policy`."""

    def __init__(self, reject_response_format: bool = False, port: int = 0) -> None:
        def policy(body: dict) -> Reply | str:
            if reject_response_format and "response_format" in body:
                return Reply(status=400, raw=json.dumps({"error": {"message": "response_format unsupported"}}))
            return rubric_policy(body)

        super().__init__(policy, port=port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--reject-response-format", action="store_true")
    args = ap.parse_args(argv)
    return serve_until_stopped(GeneratorServer(args.reject_response_format, port=args.port), "rubric generator")


if __name__ == "__main__":
    sys.exit(main())
