"""The rehearsal's preference data, written in both released layouts from one program-made list of pairs.

Each prompt is a short natural instruction whose answer a program knows (add two numbers, sort a list of
numbers, reverse a list of words). Three candidate answers are scored by that program (1 for the right
answer, minus the size of the mistake otherwise) and, as in the released datasets, the best-scored one is
``chosen`` and the worst ``rejected``. Every wrong candidate is a near miss (a digit off, two items
swapped), so chosen and rejected differ in a few tokens: the signal a token-level method is about, and one
a tiny model can learn. The same pairs go to:

- ``data/princeton-nlp-layout/train.parquet``: ``prompt_id``, ``prompt``, ``chosen``/``rejected`` as
  [user, assistant] message lists, ``all_generated_responses``, ``all_rm_scores``;
- ``data/mk1111-layout.json``: a JSON array of ``{instruction, chosen, rejected}`` strings.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

from reproduce.io import atomic_write_text

PRINCETON_FILE = Path("data/princeton-nlp-layout/train.parquet")
MK1111_FILE = Path("data/mk1111-layout.json")
WORDS = ("apple", "river", "stone", "cloud", "lamp", "tiger", "bread", "chair", "window", "garden", "candle",
         "mirror", "pencil", "rocket", "violin", "forest")


def _addition(rng: random.Random) -> tuple[str, list[str], list[float]]:
    a, b = rng.randint(10, 999), rng.randint(10, 999)
    s = a + b
    misses = (s + rng.choice((-1, 1)), s + rng.choice((-10, 10)))  # one digit off: near misses
    texts = [f"{a} + {b} = {v}." for v in (s, *misses)]
    return f"What is {a} + {b}?", texts, [1.0] + [-float(abs(v - s)) for v in misses]


def _swapped(items: list, i: int, j: int) -> list:
    out = list(items)
    out[i], out[j] = out[j], out[i]
    return out


def _inversions(candidate: list, right: list) -> int:
    """Pairs of items in the wrong relative order (0 for the right answer)."""
    pos = [right.index(x) for x in candidate]
    return sum(pos[i] > pos[j] for i in range(len(pos)) for j in range(i + 1, len(pos)))


def _ordering(rng: random.Random, right: list) -> tuple[list[list], list[float]]:
    """The right order and two near misses: neighbours swapped (1 inversion), items two apart swapped (3)."""
    i = rng.randrange(len(right) - 2)
    cands = [right, _swapped(right, i, i + 1), _swapped(right, i, i + 2)]
    return cands, [1.0] + [-float(_inversions(c, right)) for c in cands[1:]]


def _sorting(rng: random.Random) -> tuple[str, list[str], list[float]]:
    numbers = rng.sample(range(1, 100), rng.randint(4, 6))
    cands, scores = _ordering(rng, sorted(numbers))
    prompt = f"Sort these numbers from smallest to largest: {', '.join(map(str, numbers))}."
    return prompt, [", ".join(map(str, c)) for c in cands], scores


def _reversal(rng: random.Random) -> tuple[str, list[str], list[float]]:
    words = rng.sample(WORDS, rng.randint(3, 5))
    cands, scores = _ordering(rng, words[::-1])
    return f"List these words in reverse order: {', '.join(words)}.", [", ".join(c) for c in cands], scores


TASKS = (_addition, _sorting, _reversal)


def release_pairs(n_pairs: int = 256, seed: int = 0) -> list[dict]:
    """``n_pairs`` distinct-prompt records ``{prompt, responses, scores, chosen, rejected}`` from ``seed``."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n_pairs:
        prompt, responses, scores = TASKS[len(out) % len(TASKS)](rng)
        if prompt in seen:
            continue
        seen.add(prompt)
        best, worst = scores.index(max(scores)), scores.index(min(scores))
        out.append({"prompt": prompt, "responses": responses, "scores": scores,
                    "chosen": responses[best], "rejected": responses[worst]})
    return out


def write_release_layouts(out_dir: str | Path, n_pairs: int = 256, seed: int = 0) -> dict[str, Path]:
    """Write the same ``release_pairs`` in both released layouts under ``out_dir`` (atomically, each file
    complete or absent); returns ``{"princeton-nlp": parquet path, "mk1111": json path}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    pairs = release_pairs(n_pairs, seed)

    def conv(prompt: str, answer: str) -> list[dict]:
        return [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]

    table = pa.Table.from_pylist([{
        # princeton-nlp's prompt_id is the sha256 of the prompt text
        "prompt_id": hashlib.sha256(p["prompt"].encode("utf-8")).hexdigest(),
        "prompt": p["prompt"],
        "all_generated_responses": p["responses"],
        "all_rm_scores": p["scores"],
        "chosen": conv(p["prompt"], p["chosen"]),
        "rejected": conv(p["prompt"], p["rejected"]),
    } for p in pairs])
    parquet = out_dir / PRINCETON_FILE
    parquet.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parquet.parent, prefix=f".{parquet.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, parquet)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    mk1111 = out_dir / MK1111_FILE
    atomic_write_text(mk1111, json.dumps([{"instruction": p["prompt"], "chosen": p["chosen"],
                                           "rejected": p["rejected"]} for p in pairs], indent=2) + "\n")
    return {"princeton-nlp": parquet, "mk1111": mk1111}
