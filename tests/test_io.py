"""reproduce.io's atomic writers: what a reader of the results sees."""

from __future__ import annotations

import stat

from reproduce.io import atomic_write_json, atomic_write_text


def test_atomic_writes_are_readable_by_others_like_a_plain_write(tmp_path):
    """Results (score files, tables, report.html) are group/world-readable, not mkstemp's private 0600."""
    for path in (atomic_write_text(tmp_path / "report.html", "<p>x</p>"), atomic_write_json(tmp_path / "s.json", {})):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".*.tmp"))
