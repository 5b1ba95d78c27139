"""Deterministic stand-in judge answers for the three official protocols, for the tests.

They live with the rehearsal's stand-in judge (``reproduce.rehearsal.judge_server``), which answers with
them; re-exported here for the tests that script a ``StandinServer`` with them. ``verdict_for(body, n)``
answers in the format the judge prompt asks for, fixed by a hash of the messages; ``logprobs_for`` gives
AlpacaEval's first-token log-probs the same way; ``flaky_verdict_for`` a different valid verdict per call.
"""

from reproduce.rehearsal.judge_server import ARENA_LABELS, digest, flaky_verdict_for, logprobs_for, verdict_for

__all__ = ["ARENA_LABELS", "digest", "flaky_verdict_for", "logprobs_for", "verdict_for"]
