"""Judging through OpenAI's Batch API (``judging.mode: batch``): half the price, answers within 24 hours.

Only where a batch API exists: OpenAI's own host, or a judge file that says ``batch: true``
(:func:`batch_capable`); any other judge is judged in standard mode, with one line saying so.

A judge job's uncached requests become one JSONL file (one line per request: ``custom_id`` = the request's
cache key, ``method``, ``url`` ``/v1/chat/completions`` and the same ``body`` the ordinary path sends),
uploaded to ``/v1/files`` (purpose ``batch``); ``/v1/batches`` creates the batch, which is polled until it
is ``completed``, ``failed``, ``expired`` or ``cancelled``, for at most ``judging.batch_wait_s``. Each line
of the output file is matched to its request by ``custom_id``; a 200 whose verdict parses goes into the same
judgment cache as ordinary replies (priced at the batch rate); every other item (an error line, a reply
without a verdict, an item the batch never ran) is returned as not judged, and the judge job asks it
through the ordinary retry path. A provider that refuses the batch (no files endpoint, a refused create,
a batch that vanished) is no error: the job goes on in standard mode, with one line saying so.

Spending: the batch reserves its items' upper bound at the batch price in the spend ledger before the
upload (only as many items as fit under ``judging.max_usd``; the rest go the ordinary way, which stops at
the cap); when the batch is done, the usage of every line of its output replaces that reservation.

The batch id (and its ledger entry's nonce) is written beside the job's own cache file
(``<cache file>.batch.json``) as soon as the batch exists, so a killed job's rerun resumes polling that
batch instead of paying for the same requests twice; a resumed batch is never refused by the cap (its
money was committed when it was created). The file is removed once the batch's results are in the cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from reproduce.io import DataError, atomic_write_json, read_json
from reproduce.judges.pricing import BATCH_PRICE_FACTOR

logger = logging.getLogger(__name__)

DONE = ("completed", "failed", "expired", "cancelled")
ENDPOINT = "/v1/chat/completions"
OPENAI_HOST = "api.openai.com"
# the longest a job waits for its batch: OpenAI's 24 h completion window, then 2 h for the batch to be
# marked expired and its partial output to appear
DEFAULT_WAIT_S = 26 * 3600.0


def batch_capable(judge_cfg: dict) -> bool:
    """Whether ``judge_cfg``'s endpoint has a Batch API: OpenAI's host, or the judge file's ``batch: true``."""
    if judge_cfg.get("kind") != "openai":
        return False
    if "batch" in judge_cfg:
        return bool(judge_cfg["batch"])
    host = urlparse(judge_cfg.get("base_url") or "https://api.openai.com/v1").hostname or ""
    return host == OPENAI_HOST


class BatchSender:
    """Sends one judge job's requests as a batch; ``state_path`` holds the batch id between runs."""

    def __init__(self, state_path: str | Path, poll_s: float = 60.0, window: str = "24h",
                 wait_s: float = DEFAULT_WAIT_S):
        self.state_path = Path(state_path)
        self.poll_s, self.window, self.wait_s = float(poll_s), window, float(wait_s)

    async def run(self, judge, parse, todo: dict, cache, log=print, guard=None) -> dict:
        """Judge ``todo`` ({cache key: (label, game, request)}) in one batch (a new one, or the one a killed
        run left), each reply read by ``parse(game, reply)``; returns {key: Outcome} of the items judged, after
        putting them in ``cache``. ``guard`` (a :class:`reproduce.judges.guard.CostGuard`): the spend ledger
        and cap."""
        import openai

        if not hasattr(judge, "_params"):
            log(f"judge {judge.name}: batch mode needs an OpenAI-compatible judge; sending one request at a time")
            return {}
        client, _ = judge._session()
        state = read_json(self.state_path) if self.state_path.is_file() else None
        if state and set(state.get("keys", [])) & set(todo):
            batch_id, nonce = state["batch_id"], state.get("nonce", state["batch_id"])
            if guard is not None:  # already created: committed money, never refused
                guard.reserve_batch(nonce, self._bound_usd(judge, todo, state["keys"]), resumed=True)
            log(f"judge {judge.name}: resuming batch {batch_id} ({len(state['keys'])} requests; {self.state_path})")
        else:
            keys = self._fitting(judge, todo, guard)
            if not keys:
                log(f"judge {judge.name}: batch mode: not one request fits under judging.max_usd at its upper bound; "
                    "standard mode (which stops at the cap)")
                return {}
            nonce = uuid.uuid4().hex
            if guard is not None and guard.reserve_batch(nonce, self._bound_usd(judge, todo, keys), resumed=False) is not None:
                log(f"judge {judge.name}: batch mode: another job took the budget first; standard mode")
                return {}
            try:
                batch_id = await self._create(client, judge, {k: todo[k] for k in keys})
            except openai.APIError as e:
                if guard is not None:
                    guard.release_batch(nonce)
                log(f"judge {judge.name}: {judge.base_url} has no usable Batch API ({_why(e)}); standard mode")
                return {}
            state = {"batch_id": batch_id, "nonce": nonce, "keys": keys, "created": time.time(), "judge": judge.name}
            atomic_write_json(self.state_path, state)  # before any wait: a killed job resumes this batch
            log(f"judge {judge.name}: batch {batch_id} created with {len(keys)} requests; polling every "
                f"{self.poll_s:g}s for at most {self.wait_s:g}s ({self.state_path})")
        batch = await self._wait(client, batch_id, judge.name)
        if batch is None:  # the provider no longer knows it: nothing to bill, nothing to resume
            if guard is not None:
                guard.release_batch(nonce)
            self.state_path.unlink(missing_ok=True)
            log(f"judge {judge.name}: batch {batch_id} is unknown to {judge.base_url}; standard mode")
            return {}
        lines = await self._lines(client, batch.output_file_id)
        if guard is not None:
            self._bill(judge, guard, nonce, lines, todo, state["keys"])
        outcomes = self._judged(judge, parse, lines, todo, cache, batch_id)
        errors = len(await self._lines(client, getattr(batch, "error_file_id", None)))
        self.state_path.unlink(missing_ok=True)  # its results are in the cache now
        rest = len(todo) - len(outcomes)
        log(f"judge {judge.name}: batch {batch_id} {batch.status}: {len(outcomes)} of {len(todo)} judged"
            + (f"; {rest} ({errors} failed items) go through the ordinary path" if rest else ""))
        return outcomes

    # ----- spending -----

    @staticmethod
    def _item_bound_usd(judge, request) -> float:
        """One item's upper bound at the batch price."""
        return judge.bound_usd(judge._params(request)) * BATCH_PRICE_FACTOR

    def _bound_usd(self, judge, todo: dict, keys: list) -> float:
        return sum(self._item_bound_usd(judge, todo[k][2]) for k in keys if k in todo)

    def _fitting(self, judge, todo: dict, guard) -> list[str]:
        """The keys of ``todo`` whose upper bounds fit, in order, under what the cap leaves (all without one)."""
        if guard is None or guard.max_usd is None:
            return list(todo)
        left = guard.max_usd - guard.ledger.look()
        keys = []
        for key, (_, _, request) in todo.items():
            usd = self._item_bound_usd(judge, request)
            if usd > left:
                break
            left -= usd
            keys.append(key)
        return keys

    def _bill(self, judge, guard, nonce: str, lines: list[dict], todo: dict, keys: list) -> None:
        """Bill the batch: every 200 line's usage at the batch price (a line without readable usage at its
        upper bound); error lines are free."""
        prompt = completion = 0
        usd = 0.0
        for line in lines:
            response = line.get("response") or {}
            if response.get("status_code") != 200:
                continue
            body = response.get("body") if isinstance(response.get("body"), dict) else {}
            usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
            try:
                p, c = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
            except (TypeError, KeyError, ValueError):
                key = line.get("custom_id")
                p, c = judge.bound_tokens(judge._params(todo[key][2])) if key in todo else (0, 0)
            prompt, completion = prompt + p, completion + c
            usd += (p * judge.price_in + c * judge.price_out) / 1e6 * BATCH_PRICE_FACTOR
        guard.bill_batch(nonce, usd, prompt, completion)

    @staticmethod
    def _judged(judge, parse, lines: list[dict], todo: dict, cache, batch_id: str) -> dict:
        """{key: Outcome} of the output lines whose verdict parses (each put in ``cache``)."""
        from reproduce.judges.run import Outcome

        outcomes = {}
        for line in lines:
            key = line.get("custom_id")
            if key not in todo:
                continue
            response = line.get("response") or {}
            if response.get("status_code") != 200 or line.get("error"):
                continue
            label, game, request = todo[key]
            try:
                reply = judge._reply(json.dumps(response.get("body")), bool(request.decoding.get("logprobs")))
            except Exception as e:  # a malformed item: the ordinary path asks it again
                logger.info("judge %s: batch item %s unusable (%s)", judge.name, label, e)
                continue
            reply.cost_usd *= BATCH_PRICE_FACTOR
            reply.extra["batch_id"] = batch_id
            verdict = parse(game, reply)
            if verdict is None:
                continue
            cache.put(key, reply, verdict)
            outcomes[key] = Outcome(verdict=verdict, reply=reply)
        return outcomes

    # ----- the provider -----

    async def _create(self, client, judge, todo: dict) -> str:
        """Upload the requests as JSONL and create the batch; returns its id."""
        lines = [json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": judge._params(request)})
                 for key, (_, _, request) in todo.items()]
        data = ("\n".join(lines) + "\n").encode()
        upload = await client.files.create(file=("judge_requests.jsonl", data, "application/jsonl"), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window=self.window)
        return batch.id

    async def _wait(self, client, batch_id: str, name: str):
        """Poll until the batch is done (the batch object), it is unknown to the provider (None), or
        ``wait_s`` has passed (a one-line error; the state file stays, so a rerun resumes the batch)."""
        import openai

        last = None
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                batch = await client.batches.retrieve(batch_id)
            except openai.NotFoundError:
                return None
            except openai.APIError as e:  # a blip while polling: the batch runs on regardless
                logger.info("judge %s: polling batch %s failed (%s); polling on", name, batch_id, _why(e))
                batch = None
            if batch is not None and batch.status in DONE:
                return batch
            if batch is not None and batch.status != last:
                logger.info("judge %s: batch %s is %s", name, batch_id, batch.status)
                last = batch.status
            if time.monotonic() + self.poll_s > deadline:
                raise DataError(f"{self.state_path}: batch {batch_id} still {last or 'not reported'} after "
                                f"{self.wait_s:g}s (judging.batch_wait_s); it stays on record, so a rerun resumes "
                                "it without paying again")
            await asyncio.sleep(self.poll_s)

    @staticmethod
    async def _lines(client, file_id: str | None) -> list[dict]:
        """The JSON lines of a batch output or error file (none without a file)."""
        if not file_id:
            return []
        content = await client.files.content(file_id)
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]


def _why(error) -> str:
    """A short reason from a client error: its HTTP status, else its type."""
    status = getattr(error, "status_code", None)
    return f"HTTP {status}" if status else type(error).__name__
