"""Judge one model's answers on one benchmark with one judge, through the content-addressed cache.

For every question the protocol renders its judge requests (games); each request is looked up in the
judge's cache, answered by the judge when missing, re-asked up to ``judging.max_attempts`` times while
no verdict parses, and only a parsed verdict is cached.

Transient failures (the judge raised :class:`TransientJudgeError`: the SDK's transport retries or the
judge's malformed-reply retries ran out) are asked again in re-ask rounds, with a growing wait (at
least what the server asked for), for at most ``judging.retry_budget_s`` seconds after the first pass
- unless no game of the first pass could connect at all (nothing listens at ``base_url``).
A game that still has no verdict is listed in ``failures`` and carries no verdict in its record (the
scorers count it as failed and mark the score incomplete) — a failure is never a verdict. A
:class:`JudgeFatalError` (the endpoint does not serve the judge model) stops the job at once; what was
judged before it stays in the cache. So does any other exception of ``judge.complete`` than a
:class:`JudgeError` or the openai client's ``APIError``: a fault in code, which every game would repeat
(:class:`JudgeCodeError`, one line naming its type, message and game; the traceback is logged). Every
re-ask is logged (logger ``reproduce.judges.run``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass

from reproduce.benchmarks.protocol import get_protocol
from reproduce.judges import response_models
from reproduce.judges.base import (Judge, JudgeCodeError, JudgeError, JudgeFatalError, JudgeReply,
                                   TransientJudgeError)

logger = logging.getLogger(__name__)

DEFAULT_RETRY_BUDGET_S = 1800.0  # re-ask rounds after the first pass: 30 min, then the job gives up
ROUND_WAIT_S = (1.0, 60.0)
DEAD_AFTER = 8  # first-pass games without any reply (and none with one) after which the endpoint counts as dead  # wait before re-ask round r: first, doubling up to the cap


@dataclass
class Outcome:
    """The result of asking one game: a verdict, or why not (``transient``: worth asking again)."""

    verdict: object = None
    reply: JudgeReply | None = None
    reason: str | None = None
    transient: bool = False
    wait_s: float | None = None
    unreachable: bool = False


async def _ask(judge: Judge, parse, game: str, request, max_attempts: int, label: str) -> Outcome:
    """Ask until a verdict parses (``parse(game, reply)``) or ``max_attempts`` replies parsed to nothing."""
    reply, reason = None, "no verdict parsed"
    for attempt in range(1, max_attempts + 1):
        try:
            reply = await judge.complete(request)
        except TransientJudgeError as e:
            return Outcome(reason=f"judge error: {e}", transient=True, wait_s=e.wait_s, unreachable=e.unreachable)
        except JudgeFatalError:
            raise
        except JudgeError as e:
            return Outcome(reason=f"judge error: {e}")
        except Exception as e:
            if _is_client_error(e):  # the endpoint's answer, reported by the client: this game failed
                return Outcome(reason=f"judge error: {type(e).__name__}: {e}")
            raise JudgeCodeError(judge.name, label, e) from e
        reply.extra["asks"] = attempt
        verdict = parse(game, reply)
        if verdict is not None:
            return Outcome(verdict=verdict, reply=reply)
        reason = f"no verdict parsed after {attempt} attempt(s): {str(reply.text)[:80]!r}"
        if attempt < max_attempts:
            logger.info("judge %s: %s: no verdict in %r; asking again (%d of %d)", judge.name, label,
                        str(reply.text)[:60], attempt + 1, max_attempts)
    return Outcome(reply=reply, reason=reason)


def _is_client_error(error: Exception) -> bool:
    """Whether ``error`` is the openai client's ``APIError`` (an HTTP-level failure it reports). Looked up in
    ``sys.modules``: if the client was never imported, no judge can have raised its error, and judges
    that speak no HTTP (the verifier) do not pay for importing it."""
    openai = sys.modules.get("openai")
    return openai is not None and isinstance(error, openai.APIError)


def _round_wait(round_no: int, outcomes: list[Outcome]) -> float:
    """Seconds before re-ask round ``round_no`` (2, 3, ...): doubling from ROUND_WAIT_S[0] up to the cap, and
    at least the longest wait a server asked for."""
    first, cap = ROUND_WAIT_S
    wait = min(cap, first * 2 ** (round_no - 2))
    asked = [o.wait_s for o in outcomes if o.wait_s is not None]
    return max([wait] + asked)


async def _judge_games(judge: Judge, parse, games: dict, max_attempts: int, budget_s: float, cache,
                       on_done) -> tuple[dict[str, Outcome], int]:
    """Ask every game of ``games`` ({key: (label, game, request)}), each reply read by ``parse(game, reply)``,
    re-asking transient failures in rounds until none is left or ``budget_s`` after the first pass is spent.
    Returns ({key: Outcome}, rounds)."""
    results: dict[str, Outcome] = {}
    pending = list(games)
    deadline = None
    round_no = 0
    # a dead endpoint (refuses connections, or accepts them and never answers): once the first DEAD_AFTER
    # games of the first pass got no reply at all and none got one, the rest are not asked, so the first
    # pass does not take len(games) / concurrency times the per-call bound
    dead_after = max(DEAD_AFTER, 2 * int(getattr(judge, "concurrency", 1) or 1))
    no_reply = {"count": 0, "replied": False}
    dead = asyncio.Event()
    # set by the first JudgeFatalError: the group cancels the other games only after every task already
    # scheduled has taken its first step, so each checks this before asking (a fault raised before the
    # first await would otherwise hit every game once)
    stopping = asyncio.Event()
    running: list[asyncio.Task] = []
    while pending:
        round_no += 1

        async def one(key: str) -> None:
            label, game, request = games[key]
            if stopping.is_set():
                return
            try:
                if deadline is None:
                    out = await _ask(judge, parse, game, request, max_attempts, label)
                else:
                    async with asyncio.timeout_at(deadline):
                        out = await _ask(judge, parse, game, request, max_attempts, label)
            except JudgeFatalError:
                stopping.set()
                raise
            except TimeoutError:
                prev = results.get(key)
                out = Outcome(reason=f"retry budget of {budget_s:g}s spent (last: {prev.reason if prev else 'none'})")
            except asyncio.CancelledError:
                if not dead.is_set():
                    raise  # the group is stopping (a JudgeFatalError elsewhere) or the run is cancelled
                out = Outcome(reason=f"not asked: the first {dead_after} games got no reply from the endpoint",
                              transient=True, unreachable=True)
            if round_no == 1 and not dead.is_set():
                if out.unreachable:
                    no_reply["count"] += 1
                else:
                    no_reply["replied"] = True
                if not no_reply["replied"] and no_reply["count"] >= dead_after:
                    dead.set()
                    for task in running:  # the rest of the first pass: waiting for the endpoint, or not yet asked
                        if task is not asyncio.current_task() and not task.done():
                            task.cancel()
            if out.verdict is not None:
                cache.put(key, out.reply, out.verdict)
            results[key] = out
            on_done(out)

        try:
            async with asyncio.TaskGroup() as group:
                running = [group.create_task(one(key)) for key in pending]
        except* JudgeFatalError as eg:
            first = eg.exceptions[0]
            if isinstance(first, JudgeCodeError):  # the job's log gets where the fault is; the user one line
                logger.error("judge %s: %s raised:", judge.name, first.game, exc_info=first.error)
            raise first from None
        loop_now = asyncio.get_running_loop().time()
        if deadline is None:
            deadline = loop_now + budget_s  # the budget starts when the first pass is over
        pending = [k for k in pending if results[k].transient]
        if not pending:
            break
        stopped = getattr(getattr(judge, "guard", None), "stopped", None)
        if stopped:  # the cap: nothing more is sent, so no re-ask round
            for k in pending:
                results[k].reason += f" - not asked again: {stopped}"
                results[k].transient = False
            break
        if round_no == 1 and len(pending) == len(games) and all(results[k].unreachable for k in pending):
            # not one game of the first pass reached the endpoint (every connection refused / unresolved,
            # each after its transport retries): a wrong base_url or a server that is not running, not a blip
            logger.warning("judge %s: no connection to (or no reply from) the endpoint for any of %d games; not "
                           "asking again (is the server running, is base_url right?)", judge.name, len(pending))
            for k in pending:
                results[k].reason += " - no game got a reply from the endpoint, so none was asked again"
                results[k].transient = False
            break
        wait = _round_wait(round_no + 1, [results[k] for k in pending])
        left = deadline - loop_now
        if wait >= left:
            logger.warning("judge %s: %d game(s) still failing after round %d and the retry budget (%gs) is spent; "
                           "giving up on them (a rerun asks exactly these again)", judge.name, len(pending), round_no,
                           budget_s)
            for k in pending:
                results[k].reason = f"retry budget of {budget_s:g}s spent after {round_no} round(s) (last: {results[k].reason})"
                results[k].transient = False
            break
        example = results[pending[0]].reason
        logger.info("judge %s: %d game(s) failed transiently in round %d (e.g. %s); asking them again in %.1fs "
                    "(retry budget left %.0fs)", judge.name, len(pending), round_no, example, wait, left)
        for k in pending:
            logger.info("judge %s: re-asking %s", judge.name, games[k][0])
        await asyncio.sleep(wait)
    return results, round_no


def bench_for_judge(bench: dict, judge_config: dict) -> dict:
    """``bench`` as the judge of ``judge_config`` is asked it: a judge without log-probs gets the protocol's
    discrete verdicts, read as its file says. Whatever renders this judge's requests (the judge job, a plan
    looking them up in the cache) starts here, so they render the same requests and cache keys."""
    proto = get_protocol(bench["protocol"])
    if (judge_config or {}).get("logprobs") is False and hasattr(proto, "without_logprobs"):
        return proto.without_logprobs(bench, judge_config)
    return bench


async def judge_model(bench: dict, judge: Judge, cache, questions: list[dict], answers: dict[str, dict],
                      reference: dict[str, dict] | None, templates, log=print, *,
                      batch=None) -> tuple[list[dict], list[dict], dict]:
    """Judge every answered question; returns (native records, failures, run stats).

    ``judge.guard`` (a :class:`reproduce.judges.guard.CostGuard`, if attached) sees every request just
    before it is sent and refuses the one that would cross ``judging.max_usd``; then nothing more is sent,
    and ``stats["budget_left"]`` says how many games are left and their upper bound in dollars. The stats'
    ``cost_usd`` is what this run was billed, as the spend ledger holds it. ``batch`` (a
    :class:`reproduce.judges.batch.BatchSender`) sends the uncached requests through a batch API first;
    what it does not return judged goes through the ordinary path.

    Raises :class:`JudgeFatalError` (nothing more is asked) when the endpoint does not serve the judge.
    """
    proto = get_protocol(bench["protocol"])
    bench = bench_for_judge(bench, judge.config)
    # the protocol's reply parser for this bench (a judge's verdict_regex bound in), else its plain parse
    parse = proto.parser(bench) if hasattr(proto, "parser") else proto.parse
    judging = bench.get("judging") or {}
    max_attempts = judging.get("max_attempts", 2)
    budget_s = float(judging.get("retry_budget_s", DEFAULT_RETRY_BUDGET_S))
    identity = judge.identity()
    plan = []  # (question, answer, reference, [(game, request, cache_key)])
    for q in questions:
        a = answers.get(q["question_id"])
        if a is None:
            continue
        ref = reference.get(q["question_id"]) if reference is not None else None
        if reference is not None and ref is None:
            raise ValueError(f"reference answers lack question {q['question_id']!r}")
        games = [(g, r, cache.key(identity, r)) for g, r in proto.build_requests(q, a, ref, bench, templates)]
        plan.append((q, a, ref, games))
    todo: dict[str, tuple] = {}
    for q, _, _, games in plan:
        for g, r, k in games:
            if cache.get(k) is None and k not in todo:
                todo[k] = (f"{q['question_id']}/{g}", g, r)
    n_games = sum(len(p[3]) for p in plan)
    # no cost figure here: the job's one figure is what it was billed (the ledger's), in its last line
    log(f"judge {judge.name}: {n_games} requests, {len(todo)} not cached")
    guard = getattr(judge, "guard", None)

    from tqdm import tqdm

    t0 = time.time()
    batched: dict[str, Outcome] = {}
    if batch is not None and todo:
        try:
            batched = await batch.run(judge, parse, todo, cache, log, guard=guard)
        except BaseException:
            await judge.aclose()
            raise
    rest = {k: v for k, v in todo.items() if k not in batched}  # failed batch items: the ordinary retry path
    bar = tqdm(total=len(rest), desc=f"judging ({judge.name})", file=sys.stderr, disable=not rest)
    try:
        results, rounds = await _judge_games(judge, parse, rest, max_attempts, budget_s, cache,
                                             lambda out: bar.update(1) if not out.transient else None)
    finally:
        bar.close()
        await judge.aclose()
    results = {**batched, **results}

    records, failures = [], []
    cost = tokens_in = tokens_out = 0
    for q, a, ref, games in plan:
        verdicts, replies = {}, {}
        for g, r, k in games:
            hit = cache.get(k)
            if hit is not None:
                verdicts[g], replies[g] = hit["verdict"], JudgeReply(**hit["reply"])
                if k in results:  # judged in this run: count its usage
                    cost += replies[g].cost_usd
                    tokens_in += replies[g].prompt_tokens
                    tokens_out += replies[g].completion_tokens
            else:
                out = results[k]
                verdicts[g], replies[g] = None, out.reply
                failures.append({"question_id": q["question_id"], "game": g, "reason": out.reason})
        record = proto.make_record(q, a, ref, bench, judge.name, verdicts, replies)
        record[response_models.FIELD] = response_models.record_models(replies)
        records.append(record)
    served = response_models.count_models(records)
    drift = response_models.drift_warning(judge.name, served, "this run")
    if drift:
        logger.warning(drift)
        log(drift)
    if guard is not None:  # every billed reply, re-asks and failures included: the ledger's figures
        cost, tokens_in, tokens_out = guard.run_usd, guard.run_tokens[0], guard.run_tokens[1]
    stats = {"requests": n_games, "new_requests": len(todo), "failed_games": len(failures),
             "n_expected": n_games, "n_judged": n_games - len(failures), "n_failed": len(failures),
             "rounds": rounds if rest else 0, "batch_requests": len(batched), "cost_usd": round(cost, 6), "prompt_tokens": tokens_in,
             "completion_tokens": tokens_out, "seconds": round(time.time() - t0, 2), "response_models": served}
    if guard is not None and guard.stopped:
        left = [todo[k][2] for k in todo if cache.get(k) is None]
        bound = getattr(judge, "bound_usd", None)
        stats["budget_left"] = {"games": len(left), "usd_max": round(sum(bound(judge._params(r)) for r in left)
                                                                      if bound else 0.0, 4)}
    return records, failures, stats
