"""YAML loading that cannot be made to hang: anchors and aliases are refused.

PyYAML's safe loader expands aliases, so a few hundred bytes of nested aliases (a "billion laughs") build
an object of billions of elements and keep the process busy for minutes. No configuration file of this
project needs anchors or aliases, so the loader refuses them with a one-line error naming the line.
"""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises on the first anchor or alias instead of expanding it."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in this file",
                                              event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&name) are not allowed in this file",
                                              event.start_mark)
        return super().compose_node(parent, index)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` without anchors or aliases (each is a ``yaml.YAMLError`` naming its line)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
