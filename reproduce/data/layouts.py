"""The released preference-data layouts, told apart by their columns, and how one row of each gives the
prompt and the two answers.

- ``princeton-nlp`` (SimPO's princeton-nlp/llama3-ultrafeedback(-armorm), parquet): ``prompt`` (str),
  ``chosen``/``rejected`` as lists of ``{role, content}`` messages whose last one is the assistant answer,
  ``prompt_id``; ``all_generated_responses``/``all_rm_scores`` are not needed and never read.
- ``mk1111`` (the TGDPO authors' LLaMA-Factory alpaca ranking JSON): ``instruction``, optional ``input``,
  ``chosen``/``rejected`` strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from reproduce.io import DataError


@dataclass(frozen=True)
class Fields:
    """What a row says: prompt text, the two answer texts, its own id (if the layout has one)."""

    prompt: str
    chosen: str
    rejected: str
    pair_id: str | None = None
    joined_input: bool = False  # mk1111: a non-empty ``input`` was appended to the instruction


@dataclass(frozen=True)
class Layout:
    """A known layout: the columns it needs, the ones it may use, and its row reader."""

    name: str
    describe: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    extract: Callable[[dict], Fields]  # raises ValueError on a malformed row

    def lacks(self, columns: Iterable[str]) -> list[str]:
        """The required columns missing from ``columns``."""
        have = set(columns)
        return [c for c in self.required if c not in have]

    def columns_in(self, columns: Iterable[str]) -> list[str]:
        """The columns to read from a table that has ``columns`` (required + present optional ones)."""
        have = set(columns)
        return list(self.required) + [c for c in self.optional if c in have]


def _text(row: dict, key: str, required: bool = True) -> str:
    if key not in row:
        if required:
            raise ValueError(f"lacks '{key}'")
        return ""
    value = row[key]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"'{key}' is a {type(value).__name__}, expected a string")
    return value


def _final_answer(row: dict, key: str) -> str:
    """The content of the last message of a message list, which must be the assistant's."""
    if key not in row:
        raise ValueError(f"lacks '{key}'")
    msgs = row[key]
    if not isinstance(msgs, (list, tuple)) or not msgs or not all(isinstance(m, dict) for m in msgs):
        raise ValueError(f"'{key}' must be a non-empty list of {{role, content}} messages "
                         f"(got {type(msgs).__name__})")
    last = msgs[-1]
    if last.get("role") != "assistant":
        raise ValueError(f"'{key}' must end with the assistant answer, its last message has role {last.get('role')!r}")
    content = last.get("content")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"'{key}' answer content is a {type(content).__name__}, expected a string")
    return content or ""


def _princeton_row(row: dict) -> Fields:
    # The prompt is the ``prompt`` column as one user turn: in these UltraFeedback sets chosen[:-1] is
    # exactly that one user message, so nothing is lost by not rebuilding it from the message list.
    pid = row.get("prompt_id")
    return Fields(_text(row, "prompt"), _final_answer(row, "chosen"), _final_answer(row, "rejected"),
                  pair_id=str(pid) if pid not in (None, "") else None)


def _mk1111_row(row: dict) -> Fields:
    instruction, extra = _text(row, "instruction"), _text(row, "input", required=False)
    # LLaMA-Factory's alpaca converter builds the user turn as "\n".join of the non-empty instruction and
    # input, instruction first; we follow it. (The authors' data/dataset_info.json maps only
    # prompt/chosen/rejected, and LLaMA-Factory then leaves the input column unused; their released files
    # have no input column, so both readings agree on them. Rows where an input was joined are counted.)
    prompt = "\n".join(part for part in (instruction, extra) if part)
    return Fields(prompt, _text(row, "chosen"), _text(row, "rejected"), joined_input=bool(instruction and extra))


LAYOUTS = (
    Layout("princeton-nlp", "princeton-nlp parquet (prompt + message lists)", ("prompt", "chosen", "rejected"),
           ("prompt_id",), _princeton_row),
    Layout("mk1111", "mk1111 LLaMA-Factory alpaca ranking JSON", ("instruction", "chosen", "rejected"),
           ("input",), _mk1111_row),
)


def detect_layout(columns: Iterable[str], where: str) -> Layout:
    """The one known layout whose required columns ``columns`` has; otherwise a ``DataError`` naming
    ``where`` and, for each known layout, the columns it lacks."""
    columns = list(columns)
    matches = [lay for lay in LAYOUTS if not lay.lacks(columns)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DataError(f"{where}: columns fit several layouts ({', '.join(m.name for m in matches)}); "
                        f"columns: {', '.join(columns)}")
    lacking = "; ".join(f"{lay.describe} lacks {', '.join(lay.lacks(columns))}" for lay in LAYOUTS)
    raise DataError(f"{where}: unknown preference-data layout (columns: {', '.join(columns) or 'none'}); {lacking}")
