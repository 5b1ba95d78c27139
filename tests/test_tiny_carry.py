"""The carry task (evals/tasks/carry.yaml): 3-digit prompts with several carries, answers that restate the
equation, a demonstrator that forgets one carry, disjoint splits; and the addition task's prompts,
demonstrations and answer parsing unchanged by the extension."""

from __future__ import annotations

import random

import pytest

from reproduce.tiny.task import _drop_one_carry, carries, load_task


def test_carries_and_one_forgotten_carry_by_hand():
    assert carries(123, 456) == 0 and carries(95, 7) == 2 and carries(999, 1) == 3 and carries(15, 5) == 1
    # 95 + 7 = 102: its carries land in the tens (102 - 10) and the hundreds (102 - 100)
    assert {_drop_one_carry(95, 7, random.Random(s)) for s in range(20)} == {92, 2}
    # 15 + 5 = 20: the one carry lands in the tens
    assert _drop_one_carry(15, 5, random.Random(0)) == 10


@pytest.mark.slow
def test_carry_splits_are_disjoint_three_digit_prompts_with_several_carries():
    task = load_task("carry")
    splits = {name: task.split(name) for name in ("eval", "prefs", "sft")}
    assert {k: len(v) for k, v in splits.items()} == {"eval": 400, "prefs": 1200, "sft": 6000}
    every = [p for v in splits.values() for p in v]
    assert len(set(every)) == len(every)
    for p in every:
        a, b = task.parse_prompt(p)
        assert 100 <= a < 1000 and 100 <= b < 1000 and carries(a, b) >= 2
    assert load_task("carry").split("eval") == splits["eval"]  # fixed by the task seed


def test_carry_demonstrator_is_wrong_in_one_or_two_digits():
    task = load_task("carry")
    rng = random.Random(0)
    prompts = task.split("sft")[:1000]
    wrong = near = 0
    for p in prompts:
        answer, truth = task.demonstrate(p, rng), task.solve(p)
        assert answer.startswith(p) and task.parse_answer(answer) == int(answer[len(p):])
        value = task.parse_answer(answer)
        if value == truth:
            continue
        wrong += 1
        assert str(truth - value).rstrip("0") == "1"  # exactly one carry (a power of ten) forgotten
        differing = sum(x != y for x, y in zip(str(value).rjust(len(str(truth)), "0"), str(truth)))
        assert differing >= 1
        near += differing <= 2
    assert 0.4 < wrong / len(prompts) < 0.6  # noisy_carry_rate 0.5 (every prompt needs a carry)
    assert near / wrong > 0.95  # more than two digits only when a carry borrows through several zeros


def test_equation_answers_are_read_after_the_equals_sign():
    carry, addition = load_task("carry"), load_task("addition")
    assert carry.parse_answer("482+395=877") == 877 and carry.parse_answer("482+395=87 7") == 87
    assert carry.parse_answer("877") is None and carry.parse_answer("482+395=") is None
    assert carry.is_correct("482+395=", "482+395=877") and not carry.is_correct("482+395=", "482+395=777")
    assert carry.rating("482+395=", "482+395=867") == 1 + int(8 * 2 / 3)  # two of three digits in place
    assert addition.parse_answer("482+395=877") == 482 and addition.parse_answer("x 12") == 12  # unchanged


def test_addition_prompts_and_demonstrations_are_unchanged():
    """2-digit addition: all pairs shuffled by the task seed, every carry dropped at once (as before the carry task)."""
    task = load_task("addition")
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    random.Random(task.seed).shuffle(pairs)
    assert task.split("eval") == [f"{a}+{b}=" for a, b in pairs[:400]]
    assert task.split("prefs") == [f"{a}+{b}=" for a, b in pairs[400:1600]]
    assert task.min_carries == 0 and task.dropped_carries == "all"
    rng = random.Random(1)
    wrong = [(p, d) for p in task.split("sft")[:500] if (d := task.demonstrate(p, rng)) != str(task.solve(p))]
    for p, d in wrong:  # every carry dropped: each digit is the digit sum mod 10
        a, b = task.parse_prompt(p)
        assert d == str((a % 10 + b % 10) % 10 + 10 * ((a // 10 + b // 10) % 10))


def test_tuning_holds_out_a_fifth_of_the_preference_prompts(tmp_path):
    from reproduce.tiny.tune import main, is_dev

    task = load_task("carry")
    prefs = task.split("prefs")
    dev = [p for p in prefs if is_dev(p)]
    assert 0.15 < len(dev) / len(prefs) < 0.25 and dev == [p for p in task.split("prefs") if is_dev(p)]
    assert main(["--workdir", str(tmp_path)]) == 2  # no base model / pairs yet: one line, no traceback
