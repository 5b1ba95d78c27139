"""Judging through OpenAI's Batch API (``judging.mode: batch``): half the price, answers within 24 hours.

A judge job's uncached requests become one JSONL file (one line per request: ``custom_id`` = the request's
cache key, ``method``, ``url`` ``/v1/chat/completions`` and the same ``body`` the ordinary path sends),
uploaded to ``/v1/files`` (purpose ``batch``); ``/v1/batches`` creates the batch, which is polled until it
is ``completed``, ``failed``, ``expired`` or ``cancelled``. Each line of the output file is matched to its
request by ``custom_id``; a 200 whose verdict parses goes into the same judgment cache as ordinary replies
(priced at the batch rate); every other item (an error line, a reply without a verdict, an item the batch
never ran) is returned as not judged, and the judge job asks it through the ordinary retry path.

The batch id is written beside the job's own cache file (``<cache file>.batch.json``) as soon as the batch
exists, so a killed job's rerun resumes polling that batch instead of paying for the same requests twice;
the file is removed once the batch's results are in the cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

from reproduce.io import atomic_write_json, read_json
from reproduce.judges.pricing import BATCH_PRICE_FACTOR

logger = logging.getLogger(__name__)

DONE = ("completed", "failed", "expired", "cancelled")
ENDPOINT = "/v1/chat/completions"


class BatchSender:
    """Sends one judge job's requests as a batch; ``state_path`` holds the batch id between runs."""

    def __init__(self, state_path: str | Path, poll_s: float = 60.0, window: str = "24h"):
        self.state_path = Path(state_path)
        self.poll_s, self.window = float(poll_s), window

    async def run(self, judge, parse, todo: dict, cache, log=print) -> dict:
        """Judge ``todo`` ({cache key: (label, game, request)}) in one batch (a new one, or the one a killed
        run left), each reply read by ``parse(game, reply)``; returns {key: Outcome} of the items judged, after
        putting them in ``cache``."""
        from reproduce.judges.run import Outcome

        if not hasattr(judge, "_params"):
            log(f"judge {judge.name}: batch mode needs an OpenAI-compatible judge; sending one request at a time")
            return {}
        client, _ = judge._session()
        state = read_json(self.state_path) if self.state_path.is_file() else None
        if state and set(state.get("keys", [])) & set(todo):
            batch_id = state["batch_id"]
            log(f"judge {judge.name}: resuming batch {batch_id} ({len(state['keys'])} requests; {self.state_path})")
        else:
            batch_id = await self._create(client, judge, todo)
            state = {"batch_id": batch_id, "keys": list(todo), "created": time.time(), "judge": judge.name}
            atomic_write_json(self.state_path, state)  # before any wait: a killed job resumes this batch
            log(f"judge {judge.name}: batch {batch_id} created with {len(todo)} requests; polling every "
                f"{self.poll_s:g}s ({self.state_path})")
        batch = await self._wait(client, batch_id, judge.name)
        outcomes: dict[str, Outcome] = {}
        errors = 0
        for line in await self._lines(client, batch.output_file_id):
            key = line.get("custom_id")
            if key not in todo:
                continue
            response = line.get("response") or {}
            if response.get("status_code") != 200 or line.get("error"):
                errors += 1
                continue
            label, game, request = todo[key]
            try:
                reply = judge._reply(json.dumps(response.get("body")), bool(request.decoding.get("logprobs")))
            except Exception as e:  # a malformed item: the ordinary path asks it again
                logger.info("judge %s: batch item %s unusable (%s)", judge.name, label, e)
                errors += 1
                continue
            reply.cost_usd *= BATCH_PRICE_FACTOR
            reply.extra["batch_id"] = batch_id
            verdict = parse(game, reply)
            if verdict is None:
                errors += 1
                continue
            cache.put(key, reply, verdict)
            outcomes[key] = Outcome(verdict=verdict, reply=reply)
        errors += len(await self._lines(client, getattr(batch, "error_file_id", None)))
        self.state_path.unlink(missing_ok=True)  # its results are in the cache now
        rest = len(todo) - len(outcomes)
        log(f"judge {judge.name}: batch {batch_id} {batch.status}: {len(outcomes)} of {len(todo)} judged"
            + (f"; {rest} ({errors} failed items) go through the ordinary path" if rest else ""))
        return outcomes

    async def _create(self, client, judge, todo: dict) -> str:
        """Upload the requests as JSONL and create the batch; returns its id."""
        lines = [json.dumps({"custom_id": key, "method": "POST", "url": ENDPOINT, "body": judge._params(request)})
                 for key, (_, _, request) in todo.items()]
        data = ("\n".join(lines) + "\n").encode()
        upload = await client.files.create(file=("judge_requests.jsonl", data, "application/jsonl"), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint=ENDPOINT, completion_window=self.window)
        return batch.id

    async def _wait(self, client, batch_id: str, name: str):
        """Poll until the batch is done; returns the batch object."""
        last = None
        while True:
            batch = await client.batches.retrieve(batch_id)
            if batch.status in DONE:
                return batch
            if batch.status != last:
                logger.info("judge %s: batch %s is %s", name, batch_id, batch.status)
                last = batch.status
            await asyncio.sleep(self.poll_s)

    @staticmethod
    async def _lines(client, file_id: str | None) -> list[dict]:
        """The JSON lines of a batch output or error file (none without a file)."""
        if not file_id:
            return []
        content = await client.files.content(file_id)
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]
