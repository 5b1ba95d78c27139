"""The reference/guide precompute: batched by length, any batch size gives the same values, its figures are
reported, and TGDPO runs that differ only in alpha share one cache (the guide forwards once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import PreTrainedModel

from reproduce.train.run import build_trainer

METHOD = {"beta": 0.1, "learning_rate": 1e-3, "per_device_batch_size": 8, "max_length": 64, "save_steps": 1000,
          "loss": "tgdpo", "alpha": 0.5, "guide": "g"}


def _guide(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(str(model_dir))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    out = tmp_path / "guide"
    m.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out))
    return out


def _count_forwards(names: dict):
    """A forward pre-hook counting full-model forwards by the directory each model was loaded from."""
    counts = {k: 0 for k in names.values()}

    def hook(module, _inputs):
        if isinstance(module, PreTrainedModel) and hasattr(module, "lm_head"):
            key = names.get(str(module.config._name_or_path))
            if key:
                counts[key] += 1

    return counts, torch.nn.modules.module.register_module_forward_pre_hook(hook)


@pytest.mark.slow
def test_alpha_sweep_forwards_the_guide_once(tiny_model_dir, pairs_file, tmp_path):
    """Two TGDPO runs of one setting with different alphas (own checkpoint directories, the setting's one
    cache directory, as the workflow runs them): the second reads the first's cache, no model forwards."""
    guide = _guide(tiny_model_dir, tmp_path)
    counts, handle = _count_forwards({str(guide): "guide", str(tiny_model_dir): "policy"})
    try:
        first, _ = build_trainer(METHOD, tiny_model_dir, pairs_file, tmp_path / "ck-a05", guide_dir=guide,
                                 cache_dir=tmp_path / "cache")
        after_first = dict(counts)
        second, _ = build_trainer({**METHOD, "alpha": 1.0}, tiny_model_dir, pairs_file, tmp_path / "ck-a1",
                                  guide_dir=guide, cache_dir=tmp_path / "cache")
    finally:
        handle.remove()
    assert after_first == {"guide": 2, "policy": 2}  # 16 pairs in batches of 8, each model once per batch
    assert counts == after_first, counts  # the alpha-1.0 run forwarded nothing
    assert first.precompute_stats["hit"] is False and second.precompute_stats["hit"] is True
    assert len(list((tmp_path / "cache").glob("token_logps-*.pt"))) == 1
    for col in ("ref_chosen_token_logps", "guide_rejected_token_logps"):
        assert first.train_dataset[col] == second.train_dataset[col]


@pytest.mark.slow
def test_any_batch_size_gives_the_same_values_and_reports_its_speed(tiny_model_dir, pairs_file, tmp_path, capsys):
    """Batches of 3 (ragged, rows grouped by length) and of 16 give the same per-token values; the pass
    reports its tokens and forward tokens/s (also on stderr)."""
    guide = _guide(tiny_model_dir, tmp_path)
    a, _ = build_trainer({**METHOD, "precompute_batch_size": 3}, tiny_model_dir, pairs_file, tmp_path / "a", guide_dir=guide)
    b, _ = build_trainer({**METHOD, "precompute_batch_size": 16}, tiny_model_dir, pairs_file, tmp_path / "b", guide_dir=guide)
    for col in ("ref_chosen_token_logps", "ref_rejected_token_logps", "guide_chosen_token_logps", "guide_rejected_token_logps"):
        for x, y in zip(a.train_dataset[col], b.train_dataset[col]):
            assert len(x) == len(y) > 0
            torch.testing.assert_close(torch.tensor(x), torch.tensor(y), atol=1e-5, rtol=0)
    stats = a.precompute_stats
    assert stats["rows"] == 16 and stats["models"] == ["ref", "guide"] and stats["batch_size"] == 3
    ids = a.train_dataset
    assert stats["tokens"] == sum(len(ids[i]["prompt_ids"]) * 2 + len(ids[i]["chosen_ids"]) + len(ids[i]["rejected_ids"])
                                  for i in range(16))
    assert stats["forward_tokens_per_s"] > 0
    assert "forward tokens/s" in capsys.readouterr().err


@pytest.mark.slow
def test_the_report_reads_token_rewards_from_the_cache_through_the_training_index(tiny_model_dir, pairs_file,
                                                                                  tmp_path, monkeypatch):
    """A TGDPO training job records which cached row is which pair beside its model; the report's token strips
    read r_t from that cache (equal to the models' own log-probs), from any working directory, loading no model."""
    import json
    import shutil

    import transformers
    from transformers import AutoTokenizer

    from reproduce.paths import ResultPaths
    from reproduce.report.token_rewards import cached_pairs, response_token_logps
    from reproduce.train.run import train_method

    guide = _guide(tiny_model_dir, tmp_path)
    results = tmp_path / "results"
    paths = ResultPaths(results)
    shutil.copytree(tiny_model_dir, paths.model_dir("s", "sft"))
    shutil.copytree(guide, paths.model_dir("s", "dpo"))
    Path(paths.prefs("s")).parent.mkdir(parents=True)
    shutil.copyfile(pairs_file, paths.prefs("s"))
    with monkeypatch.context() as m:  # the workflow's training job: paths relative to its working directory
        m.chdir(tmp_path)
        summary = train_method(METHOD, "results/models/s/sft", "results/data/s/prefs.jsonl", "results/models/s/tgdpo",
                               guide_dir="results/models/s/dpo", cache_dir="results/cache/token_logps/s",
                               checkpoint_dir="results/checkpoints/s/tgdpo", log=lambda msg: None)
    pairs = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    index = json.loads(Path(paths.token_index("s", "tgdpo")).read_text())
    assert index["pair_ids"] == [p["pair_id"] for p in pairs] and index["sources"] == ["ref", "guide"]
    assert index["cache"] == summary["precompute"]["cache"] and not Path(index["cache"]).is_absolute()
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    cfg = {"preset": "t", "methods": ["sft", "dpo", "tgdpo"],
           "settings": {"s": {"methods": {"dpo": {"loss": "dpo", "beta": 0.1}, "tgdpo": METHOD | {"guide": "dpo"}}}}}

    def no_model(*args, **kwargs):
        raise AssertionError("the report loaded a model")

    with monkeypatch.context() as m:
        m.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_model)
        data = cached_pairs(cfg, results, "s", limit=5)
    assert [p["pair_id"] for p in data["pairs"]] == [p["pair_id"] for p in pairs[:5]] and data["n_total"] == 16
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    gde = transformers.AutoModelForCausalLM.from_pretrained(str(guide), dtype=torch.float32).eval()
    for entry, src in zip(data["pairs"], pairs):
        for side in ("chosen", "rejected"):
            toks, lr = response_token_logps(ref, tok, src["prompt"], src[side])
            _, lg = response_token_logps(gde, tok, src["prompt"], src[side])
            assert entry[side]["tokens"] == toks
            assert entry[side]["r"] == pytest.approx([METHOD["beta"] * (g - r) for g, r in zip(lg, lr)], abs=1e-5)
    assert any(abs(r) > 1e-4 for r in data["pairs"][0]["chosen"]["r"])  # the guide differs from the reference
