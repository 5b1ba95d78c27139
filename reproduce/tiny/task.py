"""A synthetic task whose answers a program can check: n-digit addition (``37+76=`` -> ``113``).

The same module supplies the prompts (drawn from a seed into disjoint splits), a noisy demonstrator
(drops needed carries, giving SFT something to improve on) and the verifier used as reward and judge.
Two shapes (evals/tasks/): ``addition`` (2 digits, the answer is the sum, every carry dropped at once) and
``carry`` (3 digits, prompts with several carries, the answer restates the equation, ``482+395=877``, and
one carry is dropped: a wrong answer differs from the right one in one or two of its ~13 tokens, where
token-level credit can matter).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reproduce import tasks
from reproduce.config import ROOT

_PROMPT = re.compile(r"^\s*(\d+)\s*\+\s*(\d+)\s*=\s*$")
_FIRST_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class AdditionTask:
    """n-digit addition with a noisy demonstrator; see evals/tasks/addition.yaml."""

    name: str
    digits: int
    noisy_carry_rate: float
    splits: tuple[tuple[str, int], ...]
    seed: int
    min_carries: int = 0  # prompts need at least this many carrying digit positions
    dropped_carries: str = "all"  # what a noisy demonstration drops: every needed carry, or one of them
    answer_format: str = "sum"  # an answer is the sum ("877"), or the whole equation ("482+395=877")

    def prompt(self, a: int, b: int) -> str:
        """The user message for ``a + b``."""
        return f"{a}+{b}="

    def parse_prompt(self, prompt: str) -> tuple[int, int]:
        """Inverse of :meth:`prompt`; raises ``ValueError`` naming the prompt when it is not one of ours."""
        m = _PROMPT.match(prompt)
        if not m:
            raise ValueError(f"not an addition prompt: {prompt!r}")
        return int(m.group(1)), int(m.group(2))

    def solve(self, prompt: str) -> int:
        """The correct answer of a prompt."""
        a, b = self.parse_prompt(prompt)
        return a + b

    @lru_cache(maxsize=None)
    def split(self, name: str) -> list[str]:
        """Prompts of split ``name``; splits are disjoint and fixed by the task seed."""
        pairs = self._pairs()
        start = 0
        for split_name, size in self.splits:
            if split_name == name:
                if start + size > len(pairs):
                    raise ValueError(f"task {self.name}: splits need {start + size} prompts, only {len(pairs)} exist")
                return [self.prompt(a, b) for a, b in pairs[start : start + size]]
            start += size
        raise KeyError(f"task {self.name}: unknown split '{name}' (known: {', '.join(n for n, _ in self.splits)})")

    def _pairs(self) -> list[tuple[int, int]]:
        """Every operand pair with enough carries, in the seed's order: all pairs shuffled up to 3 digits,
        else drawn at random without repeats (10^16 pairs of 8 digits cannot be listed)."""
        lo, hi = 10 ** (self.digits - 1), 10**self.digits
        if self.digits <= 3:
            pairs = [(a, b) for a in range(lo, hi) for b in range(lo, hi)]
            random.Random(self.seed).shuffle(pairs)
            return [p for p in pairs if carries(*p) >= self.min_carries] if self.min_carries else pairs
        rng, wanted = random.Random(self.seed), sum(size for _, size in self.splits)
        seen: dict[tuple[int, int], None] = {}  # insertion-ordered set
        for _ in range(100 * wanted):
            pair = (rng.randrange(lo, hi), rng.randrange(lo, hi))
            if pair not in seen and carries(*pair) >= self.min_carries:
                seen[pair] = None
                if len(seen) == wanted:
                    break
        return list(seen)

    def demonstrate(self, prompt: str, rng: random.Random) -> str:
        """A noisy demonstration: with probability ``noisy_carry_rate`` a needed carry is dropped (every
        carry, or one chosen at random, as ``dropped_carries`` says)."""
        a, b = self.parse_prompt(prompt)
        total = a + b
        if _needs_carry(a, b) and rng.random() < self.noisy_carry_rate:
            total = _drop_one_carry(a, b, rng) if self.dropped_carries == "one" else _add_without_carry(a, b)
        return f"{a}+{b}={total}" if self.answer_format == "equation" else str(total)

    def parse_answer(self, answer: str) -> int | None:
        """The integer an answer states, or None when it states none: its first integer; for the equation
        format the first integer after its first '=' (the restated operands are not the answer)."""
        text = answer or ""
        if self.answer_format == "equation":
            if "=" not in text:
                return None
            text = text.split("=", 1)[1]
        m = _FIRST_INT.search(text)
        return int(m.group(0)) if m else None

    def is_correct(self, prompt: str, answer: str) -> bool:
        """Verifier: does ``answer`` state the right sum?"""
        return self.parse_answer(answer) == self.solve(prompt)

    def reward(self, prompt: str, answer: str) -> float:
        """Reward for on-policy pair building: 1 if correct, else minus the (capped, relative) error."""
        value, truth = self.parse_answer(answer), self.solve(prompt)
        if value is None:
            return -1.0
        if value == truth:
            return 1.0
        return -min(1.0, abs(value - truth) / max(1, truth))

    def rating(self, prompt: str, answer: str) -> int:
        """MT-Bench-style 1-10 rating: 10 if correct, else 1 + 8 * fraction of digits right (in place)."""
        value, truth = self.parse_answer(answer), str(self.solve(prompt))
        if value is None:
            return 1
        if str(value) == truth:
            return 10
        got = str(value).rjust(len(truth))[-len(truth) :]
        same = sum(x == y for x, y in zip(got, truth))
        return 1 + int(8 * same / len(truth))

    def distance(self, prompt: str, answer: str) -> float:
        """Absolute error of an answer (infinite when it states no integer); used for pairwise verdicts."""
        value = self.parse_answer(answer)
        return float("inf") if value is None else float(abs(value - self.solve(prompt)))


def _needs_carry(a: int, b: int) -> bool:
    while a or b:
        if a % 10 + b % 10 >= 10:
            return True
        a, b = a // 10, b // 10
    return False


def carries(a: int, b: int) -> int:
    """How many digit positions of ``a + b`` carry into the next."""
    n = carry = 0
    while a or b:
        carry = int(a % 10 + b % 10 + carry >= 10)
        n += carry
        a, b = a // 10, b // 10
    return n


def _drop_one_carry(a: int, b: int, rng: random.Random) -> int:
    """``a + b`` with one of its carries (chosen at random) forgotten: the digit it lands in comes out one
    too small (and the digit above it too, when that digit was a 0 that borrows)."""
    positions, carry, place, x, y = [], 0, 1, a, b
    while x or y:
        carry = int(x % 10 + y % 10 + carry >= 10)
        if carry:
            positions.append(place * 10)  # the carry lands in the next position up
        x, y, place = x // 10, y // 10, place * 10
    return a + b - rng.choice(positions)


def _add_without_carry(a: int, b: int) -> int:
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return out


def load_task(name: str, root: Path = ROOT) -> AdditionTask:
    """Load and validate ``evals/tasks/<name>.yaml`` (through the task registry, :mod:`reproduce.tasks`)."""
    return tasks.load_task(name, root)


def task_from_config(data: dict) -> AdditionTask:
    """The task a validated ``evals/tasks/<name>.yaml`` of kind ``addition`` describes."""
    return AdditionTask(
        name=data["name"],
        digits=data["digits"],
        noisy_carry_rate=data.get("noisy_carry_rate", 0.0),
        splits=tuple(data["splits"].items()),
        seed=data["seed"],
        min_carries=data.get("min_carries", 0),
        dropped_carries=data.get("dropped_carries", "all"),
        answer_format=data.get("answer_format", "sum"),
    )
