"""Weights-only saves at a recipe's eval_steps (kept apart from the resumable checkpoints), the convergence
rule over several epochs, and the guide's cache key in the training log."""

from __future__ import annotations

import json

import pytest
import torch

from reproduce.config import ConfigError
from reproduce.train.milestones import ConvergenceStop, convergence_rule, epoch_means, step_dir
from reproduce.train.run import build_trainer, train_method

METHOD = {"loss": "dpo", "beta": 0.1, "learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 64,
          "save_steps": 2, "seed": 42}


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_eval_steps_save_weights_only_and_outlive_the_checkpoints(tiny_model_dir, pairs_file, tmp_path):
    """4 steps (16 pairs, 4 per step), eval_steps [1, 3]: both saves hold the weights and tokenizer but no
    optimizer state, differ from each other and from the final model, and stay once checkpoint-2 is deleted."""
    summary = train_method({**METHOD, "max_steps": 4, "eval_steps": [3, 1]}, tiny_model_dir, pairs_file,
                           tmp_path / "m", checkpoint_dir=tmp_path / "ck", log=lambda _: None)
    assert summary["steps"] == 4 and not list((tmp_path / "ck").glob("checkpoint-*"))
    assert sorted(summary["eval_steps"]) == ["1", "3"]
    saves = {s: step_dir(tmp_path / "ck", s) for s in (1, 3)}
    for s, d in saves.items():
        assert json.loads((d / "step_summary.json").read_text())["step"] == s
        assert (d / "tokenizer_config.json").exists() and (d / "config.json").exists()
        assert not list(d.glob("optimizer*")) and not list(d.glob("scheduler*"))
    w1, w3, final = _weights(saves[1]), _weights(saves[3]), _weights(tmp_path / "m")
    name = next(iter(final))
    assert not torch.equal(w1[name], w3[name]) and not torch.equal(w3[name], final[name])


def test_eval_steps_past_the_last_step_stop_before_training(tiny_model_dir, pairs_file, tmp_path):
    with pytest.raises(ConfigError, match=r"eval_steps': step\(s\) \[9\] lie past the run's last step 4"):
        train_method({**METHOD, "max_steps": 4, "eval_steps": [2, 9]}, tiny_model_dir, pairs_file, tmp_path / "m",
                     checkpoint_dir=tmp_path / "ck", log=lambda _: None)
    assert not (tmp_path / "m" / "train_log.jsonl").exists()


def test_epoch_means_and_the_rule():
    """Each epoch's mean over its last window of steps; an unfinished epoch has none; the rule needs max_epochs."""
    history = [{"step": s, "loss": l} for s, l in enumerate([4, 3, 2, 1, 1.0, 1.0, 0.9, 0.8, 0.7], start=1)]
    assert epoch_means(history, 4, 2) == pytest.approx([1.5, 0.85])  # steps 3-4 and 7-8; step 9 starts epoch 3
    assert convergence_rule({"max_epochs": 3}) == {"max_epochs": 3, "window": 20, "tolerance": 0.01}
    assert convergence_rule({"epochs": 1}) is None
    with pytest.raises(ConfigError, match="'max_epochs': give it instead of 'epochs'"):
        convergence_rule({"max_epochs": 3, "epochs": 1})
    with pytest.raises(ConfigError, match="'convergence': needs 'max_epochs'"):
        convergence_rule({"convergence": {"window": 5}})


def test_convergence_stops_at_an_epochs_end_and_says_where(tiny_model_dir, pairs_file, tmp_path):
    """max_epochs 3 at 4 steps an epoch: a tolerance no loss change can reach stops at the end of epoch 2
    (step 8, the first epoch with a previous one); a tolerance of ~0 runs all 3 epochs, the rule unfired."""
    method = {**METHOD, "max_epochs": 3, "convergence": {"window": 2, "tolerance": 1e6}}
    s = train_method(method, tiny_model_dir, pairs_file, tmp_path / "a", checkpoint_dir=tmp_path / "ca", log=lambda _: None)
    assert s["steps"] == 8 and s["convergence"]["fired"]["step"] == 8 and s["convergence"]["fired"]["epoch"] == 2
    assert s["convergence"]["window"] == 2 and len(s["convergence"]["epoch_means"]) == 2
    saved = json.loads((tmp_path / "a" / "train_summary.json").read_text())
    assert saved["convergence"]["fired"]["step"] == 8
    rows = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 9))  # the loss curve, one row per step
    method["convergence"]["tolerance"] = 1e-12
    s = train_method(method, tiny_model_dir, pairs_file, tmp_path / "b", checkpoint_dir=tmp_path / "cb", log=lambda _: None)
    assert s["steps"] == 12 and s["convergence"]["fired"] is None and len(s["convergence"]["epoch_means"]) == 3


def test_alpha_runs_print_and_share_one_guide_cache_key(tiny_model_dir, pairs_file, tmp_path, capfd):
    """Two alphas with one guide: the same cache key in both logs, the second a cache hit."""
    method = {**METHOD, "loss": "tgdpo", "alpha": 0.5, "guide": "dpo", "max_steps": 1}
    a, _ = build_trainer(method, tiny_model_dir, pairs_file, tmp_path / "a", guide_dir=tiny_model_dir,
                         cache_dir=tmp_path / "cache")
    first = capfd.readouterr().err
    b, _ = build_trainer({**method, "alpha": 2.0}, tiny_model_dir, pairs_file, tmp_path / "b", guide_dir=tiny_model_dir,
                         cache_dir=tmp_path / "cache")
    second = capfd.readouterr().err
    key = a.precompute_stats["key"]
    assert f"per-token log-prob cache key {key}" in first and f"per-token log-prob cache key {key}" in second
    assert "guide weights" in first and not a.precompute_stats["hit"] and b.precompute_stats["hit"]
    assert b.precompute_stats["key"] == key
