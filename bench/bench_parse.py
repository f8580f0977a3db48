"""How long the judge-reply parser takes on hostile replies, by size: a table, one run, this machine.

    python bench/bench_parse.py

Each shape is parsed at sizes up to the answer cap (``rgsd.judges.parse.MAX_ANSWER_CHARS``) and once far
over it (refused unread). The last column is the time per character relative to the smallest size: about
constant means linear. Prints the CPU model beside the times (machines of one kind differ by 2-3x).
"""

from __future__ import annotations

import time

from rgsd.cpu import cpu_name
from rgsd.judges.parse import MAX_ANSWER_CHARS, ParseError, parse_batched, parse_verdict

SHAPES = {
    "no JSON": lambda n: "x" * n,
    "braces": lambda n: "{" * n,
    "brace-quote": lambda n: ('{"{"' * (n // 4 + 1))[:n],
    "nested": lambda n: ('{"a":' * (n // 5 + 1))[:n],
    "brackets": lambda n: "[" * n,
    "many objects": lambda n: ('{"a":1} ' * (n // 8 + 1))[:n],
}


def seconds(reply: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for parse in (parse_verdict, lambda r: parse_batched(r, [1, 2])):
            try:
                parse(reply)
            except ParseError:
                pass
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    sizes = [MAX_ANSWER_CHARS // 8, MAX_ANSWER_CHARS // 2, MAX_ANSWER_CHARS, 5 * 2**20]
    print(f"CPU: {cpu_name()}; answer cap {MAX_ANSWER_CHARS} characters; best of 3, both parsers")
    print("| shape | " + " | ".join(f"{n} chars" for n in sizes) + " | per-char time at the cap / at the smallest |")
    print("|---" * (len(sizes) + 2) + "|")
    for name, make in SHAPES.items():
        times = [seconds(make(n)) for n in sizes]
        ratio = (times[2] / sizes[2]) / (times[0] / sizes[0]) if times[0] > 0 else float("nan")
        print(f"| {name} | " + " | ".join(f"{t * 1000:.2f} ms" for t in times) + f" | {ratio:.2f} |")


if __name__ == "__main__":
    main()
