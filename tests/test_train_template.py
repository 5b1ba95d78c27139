"""Training data do not change with the calendar: the recipe's pinned chat-template variables (Llama-3.2's
``date_string``) reach TRL's rendering of the preference pairs, as they reach generation."""

from __future__ import annotations

import datetime

import pytest

from reproduce.train.run import build_trainer

# Llama-3.2's date logic (its chat template's first lines): today's date unless date_string is given
DATED_TEMPLATE = ("{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
                  "Today Date: {{ date_string }}\n{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
                  "{% if add_generation_prompt %}>{% endif %}")
METHOD = {"loss": "simpo", "beta": 2.0, "gamma": 0.5, "learning_rate": 1e-3, "per_device_batch_size": 4,
          "max_length": 64, "save_steps": 1000}  # SimPO reads no reference: no precompute, a quick build


@pytest.fixture(scope="module")
def dated_model(tiny_model_dir, tmp_path_factory):
    """The tiny model with Llama-3.2's dated chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("dated")
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.chat_template = DATED_TEMPLATE
    tok.save_pretrained(str(out))
    AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).save_pretrained(str(out))
    return out


def _render_on(day: datetime.datetime, monkeypatch, model_dir, pairs_file, work, template_kwargs):
    """The first training example's prompt as TRL tokenized it, with the clock set to ``day``."""
    from transformers.utils import chat_template_utils

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return day

    monkeypatch.setattr(chat_template_utils, "datetime", Clock)
    trainer, tok = build_trainer(METHOD, model_dir, pairs_file, work, template_kwargs=template_kwargs)
    return tok.decode(trainer.train_dataset[0]["prompt_ids"])


def test_one_training_example_rendered_on_two_days(dated_model, pairs_file, tmp_path, monkeypatch):
    """Unpinned, the same pair renders differently on two days (the template reads the clock); pinned, it
    renders the same on both, with the pinned date."""
    days = [datetime.datetime(2026, 1, 5), datetime.datetime(2026, 3, 9)]
    # a separate work directory per render: datasets' map cache must not hand back the first day's tokens
    loose = [_render_on(d, monkeypatch, dated_model, pairs_file, tmp_path / f"loose{i}", None) for i, d in enumerate(days)]
    assert "Today Date: 05 Jan 2026" in loose[0] and "Today Date: 09 Mar 2026" in loose[1]
    pin = {"date_string": "26 Jul 2024"}
    pinned = [_render_on(d, monkeypatch, dated_model, pairs_file, tmp_path / f"pin{i}", pin) for i, d in enumerate(days)]
    assert pinned[0] == pinned[1]
    assert "Today Date: 26 Jul 2024" in pinned[0]


def test_train_jobs_carry_the_recipes_pinned_template_variables():
    """The Llama-3.2 recipe's date_string is in its train jobs' resolved config (so ``reproduce train`` passes
    it on, and a change retrains); a recipe without one keeps its train jobs' config as before."""
    from reproduce.config import job_config, load_config

    cfg = load_config({"preset": "paper"})
    job = job_config(cfg, "train", setting="llama3.2-3b-armorm", method="dpo")
    assert job["chat_template_kwargs"] == {"date_string": "26 Jul 2024"}
    assert "chat_template_kwargs" not in job_config(cfg, "train", setting="llama3-8b-pairrm", method="dpo")
