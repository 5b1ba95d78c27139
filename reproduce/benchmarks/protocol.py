"""The judging protocols, registered and looked up in one place.

A protocol module (``reproduce/benchmarks/<name>.py``) turns questions and answers into judge requests,
parses the replies, writes one judgment record per question and scores a model's records the way the
official tool does. Adding a protocol is one new module and one line in :data:`PROTOCOLS`.
"""

from __future__ import annotations

import importlib

from reproduce.config import ConfigError

# protocol name -> the module implementing it
PROTOCOLS = {"alpaca_eval2": "reproduce.benchmarks.alpaca_eval2", "arena_hard": "reproduce.benchmarks.arena_hard",
             "mt_bench": "reproduce.benchmarks.mt_bench"}


def get_protocol(name: str):
    """The module implementing protocol ``name``; an unknown name is a one-line ``ConfigError``."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})")
    return importlib.import_module(PROTOCOLS[name])
