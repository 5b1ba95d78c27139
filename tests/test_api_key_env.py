"""``api_key_env`` names an environment variable (upper case, digits, ``_``, at most 64 characters); a value
that is not such a name - an API key pasted in its place, even one of letters, digits and underscores
only - is refused wherever it is read, and never printed."""

from __future__ import annotations

import pytest

from reproduce.config import ConfigError, _check_judge
from reproduce.names import BadName, check_env_var_name
from reproduce.report.provenance import missing_reason

# keys that the earlier pattern ([A-Za-z_][A-Za-z0-9_]*) let through as variable names
WORD_KEYS = ["sk_live_4eC39HqLyjWDarjtT1zdp7dc", "abcdef0123456789ABCDEF0123456789", "A" * 65]


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "_K", "JUDGE_KEY_2", "A" * 64])
def test_variable_names_pass(name):
    assert check_env_var_name(name, "x") == name


@pytest.mark.parametrize("value", WORD_KEYS + ["sk-proj-abc", "openai_api_key", "2KEY", ""])
def test_anything_else_is_refused_without_being_shown(value):
    with pytest.raises(BadName) as e:
        check_env_var_name(value, "evals/judges/j.yaml: key 'api_key_env'")
    assert "evals/judges/j.yaml: key 'api_key_env'" in str(e.value)
    assert not value or value not in str(e.value)
    with pytest.raises(ConfigError) as e:
        _check_judge({"kind": "openai", "model": "m", "api_key_env": value}, "evals/judges/j.yaml")
    assert not value or value not in str(e.value)


def test_provenance_names_an_unset_variable_but_never_a_pasted_key(tmp_path, monkeypatch):
    """The report's reason for a missing score names ``$VAR`` when the judge's variable is unset; a resolved
    config carrying a key in its place (written by hand, never validated) is not echoed into the table."""
    monkeypatch.delenv("TGDPO_UNSET_JUDGE_KEY", raising=False)
    cfg = {"judges": {"j": {"kind": "openai", "api_key_env": "TGDPO_UNSET_JUDGE_KEY"}}}
    _, reason = missing_reason(tmp_path, cfg, "b", "j", "s", "m")
    assert "$TGDPO_UNSET_JUDGE_KEY is not set" in reason
    for key in WORD_KEYS:
        cfg = {"judges": {"j": {"kind": "openai", "api_key_env": key}}}
        short, reason = missing_reason(tmp_path, cfg, "b", "j", "s", "m")
        assert key not in short + reason and "not shown" in reason
