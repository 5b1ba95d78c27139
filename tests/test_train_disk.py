"""Disk of a training run: no checkpoint at the final step, checkpoints deleted once the model is saved
(a key keeps them), and a run whose disk cannot hold what it will write stops before training."""

from __future__ import annotations

from collections import namedtuple

import pytest

from reproduce.train import disk
from reproduce.train.run import train_method

METHOD = {"loss": "dpo", "beta": 0.1, "learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 64,
          "max_steps": 4, "save_steps": 2, "seed": 42}


def test_planned_saves_skip_the_final_step():
    assert disk.planned_saves(10, 3) == 3  # 3, 6, 9
    assert disk.planned_saves(9, 3) == 2  # 3, 6 (9 is the final step: the model is saved instead)
    assert disk.planned_saves(9, 3, done_steps=3) == 1  # resumed at 3: only 6 is left
    assert disk.planned_saves(100, 0.25) == 3  # a fraction of the run's steps, as transformers rounds it
    assert disk.planned_saves(4, 500) == 0
    assert disk.total_steps(60_000, 2, 8, 8, 1, -1) == 469 and disk.total_steps(10, 2, 1, 1, 1, 3) == 3


def test_checkpoint_and_model_bytes_decide_the_check(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    weights = 16 * 2**30
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: usage(0, 0, 90 * 2**30))
    # two or more saves from an empty directory: two checkpoints at once (the new one before the old goes)
    with pytest.raises(disk.InsufficientDiskError, match=r"ckpt: 90.0 GiB free on .*checkpoints need 96.0 GiB \(2 x 48.0 GiB"):
        disk.check_training_disk(weights, 3, 0, tmp_path / "ckpt", tmp_path / "out")
    needs = disk.check_training_disk(weights, 1, 0, tmp_path / "ckpt", tmp_path / "out")
    assert needs == {"checkpoints": 48 * 2**30, "final_model": weights, "checkpoint_bytes_each": 48 * 2**30,
                     "step_saves": 0}
    # weights-only eval-step saves are kept: each needs the weights' bytes beside the checkpoints
    with pytest.raises(disk.InsufficientDiskError, match=r"ckpt: 90.0 GiB free on .*3 eval-step saves need 48.0 GiB "
                                                         r"\(3 x 16.0 GiB, weights only\) besides 48.0 GiB"):
        disk.check_training_disk(weights, 1, 0, tmp_path / "ckpt", tmp_path / "out", step_saves=3)
    assert disk.check_training_disk(weights, 1, 0, tmp_path / "ckpt", tmp_path / "out", step_saves=2)["step_saves"] == \
        32 * 2**30
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: usage(0, 0, 10 * 2**30))
    with pytest.raises(disk.InsufficientDiskError, match=r"out: 10.0 GiB free on .*the final model needs 16.0 GiB"):
        disk.check_training_disk(weights, 0, 0, tmp_path / "ckpt", tmp_path / "out")
    # a checkpoint already on the same disk can be deleted before the final save: it counts as room
    disk.check_training_disk(weights, 0, 1, tmp_path / "ckpt", tmp_path / "out")


def _checkpoints(path):
    return sorted(p.name for p in path.glob("checkpoint-*"))


def test_no_final_checkpoint_and_none_left_after_the_model_is_saved(tiny_model_dir, pairs_file, tmp_path):
    """4 steps, a checkpoint every 2: checkpoint-2 is written mid-run, none at step 4, and it is deleted
    once the model is saved; ``keep_checkpoints: true`` keeps checkpoint-2 (still no checkpoint-4)."""
    summary = train_method(METHOD, tiny_model_dir, pairs_file, tmp_path / "m", checkpoint_dir=tmp_path / "ck",
                           log=lambda _: None)
    assert summary["steps"] == 4 and _checkpoints(tmp_path / "ck") == []
    assert summary["disk_bytes"]["checkpoints_removed"] > 0
    assert (tmp_path / "m" / "model.safetensors").exists()
    summary = train_method({**METHOD, "keep_checkpoints": True}, tiny_model_dir, pairs_file, tmp_path / "k",
                           checkpoint_dir=tmp_path / "ck2", log=lambda _: None)
    assert _checkpoints(tmp_path / "ck2") == ["checkpoint-2"] and "checkpoints_removed" not in summary["disk_bytes"]


def test_a_run_without_room_stops_before_training(tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: usage(0, 0, 1000))
    with pytest.raises(disk.InsufficientDiskError, match=r"ck: 0.0 GiB free on .*resumable checkpoints need"):
        train_method(METHOD, tiny_model_dir, pairs_file, tmp_path / "m", checkpoint_dir=tmp_path / "ck", log=lambda _: None)
    assert not (tmp_path / "m" / "train_log.jsonl").exists()  # no step ran
    with pytest.raises(disk.InsufficientDiskError, match=r"cache: 0.0 GiB free on .*per-token log-prob cache needs"):
        train_method(METHOD, tiny_model_dir, pairs_file, tmp_path / "m", checkpoint_dir=tmp_path / "ck",
                     cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not list((tmp_path / "cache").glob("*.pt"))
