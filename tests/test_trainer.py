"""The shared trainer on a tiny model: parity with TRL's DPO, precomputed == live, gradients, dropout, bad input."""

from __future__ import annotations

import copy
import gc
import weakref
from pathlib import Path

import pytest
import torch

from reproduce.train.run import build_trainer
from reproduce.train.precompute import per_token_logps

METHOD = {"beta": 0.1, "learning_rate": 1e-3, "per_device_batch_size": 8, "max_length": 64, "save_steps": 1000}


def _first_batch(trainer):
    examples = [trainer.train_dataset[i] for i in range(8)]
    return trainer.data_collator(examples)


def _perturbed(model_dir, tmp_path, name, scale=0.05, seed=1):
    """A copy of the tiny model with perturbed weights (a stand-in guidance / trained policy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(str(model_dir))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    out = tmp_path / name
    m.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(out))
    return out


def _perturb_policy(trainer, seed=2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def test_dpo_equals_trl_sigmoid(tiny_model_dir, pairs_file, tmp_path):
    from trl import DPOTrainer

    ours, tok = build_trainer({**METHOD, "loss": "dpo", "token_rewards": "live"}, tiny_model_dir, pairs_file, tmp_path / "a")
    _perturb_policy(ours)
    trl_args = copy.deepcopy(ours.args)
    trl_args.loss_type = ["sigmoid"]
    trl_args.remove_unused_columns = True
    from datasets import Dataset
    from reproduce.data.prefs import load_pairs

    rows = [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in load_pairs(pairs_file)]
    theirs = DPOTrainer(model=copy.deepcopy(ours.model), ref_model=copy.deepcopy(ours.ref_model), args=trl_args,
                        train_dataset=Dataset.from_list(rows), processing_class=tok)
    batch = _first_batch(ours)
    trl_batch = theirs.data_collator([theirs.train_dataset[i] for i in range(8)])
    assert torch.equal(batch["input_ids"], trl_batch["input_ids"])  # same tokens as TRL's own pipeline
    ours.model.eval(), theirs.model.eval()
    a = ours.compute_loss(ours.model, batch)
    b = theirs.compute_loss(theirs.model, trl_batch)
    assert abs(a.item() - b.item()) < 1e-6, (a.item(), b.item())
    assert a.item() != pytest.approx(0.6931, abs=1e-4)  # the perturbed policy differs from the reference


def test_tgdpo_precomputed_equals_live(tiny_model_dir, pairs_file, tmp_path):
    guide = _perturbed(tiny_model_dir, tmp_path, "guide")
    method = {**METHOD, "loss": "tgdpo", "alpha": 0.5, "beta": 1.0, "guide": "g"}
    pre, _ = build_trainer(method, tiny_model_dir, pairs_file, tmp_path / "p", guide_dir=guide, cache_dir=tmp_path / "cache")
    live, _ = build_trainer({**method, "token_rewards": "live"}, tiny_model_dir, pairs_file, tmp_path / "l", guide_dir=guide)
    assert "ref_chosen_token_logps" in pre.train_dataset.column_names
    assert "guide_chosen_token_logps" in pre.train_dataset.column_names
    _perturb_policy(pre)
    _perturb_policy(live)
    lp = pre.compute_loss(pre.model.eval(), _first_batch(pre))
    ll = live.compute_loss(live.model.eval(), _first_batch(live))
    assert abs(lp.item() - ll.item()) < 1e-5, (lp.item(), ll.item())
    assert list((tmp_path / "cache").glob("token_logps-*.pt")), "precomputed token log-probs were not cached"


def _variant(model_dir, tmp_path, name, attention_dropout=None, pad_token="keep"):
    """A copy of the tiny model with attention dropout set in its config and/or its pad token removed."""
    import shutil

    from transformers import AutoConfig, AutoTokenizer

    out = tmp_path / name
    shutil.copytree(model_dir, out)
    if attention_dropout is not None:
        cfg = AutoConfig.from_pretrained(str(out))
        cfg.attention_dropout = attention_dropout
        cfg.save_pretrained(str(out))
    if pad_token is None:
        tok = AutoTokenizer.from_pretrained(str(out))
        tok.pad_token = None
        tok.save_pretrained(str(out))
        assert AutoTokenizer.from_pretrained(str(out)).pad_token is None
    return out


def test_gradients_reach_only_policy(tiny_model_dir, pairs_file, tmp_path):
    guide = _perturbed(tiny_model_dir, tmp_path, "guide")
    method = {**METHOD, "loss": "tgdpo", "alpha": 0.5, "guide": "g", "token_rewards": "live"}
    tr, _ = build_trainer(method, tiny_model_dir, pairs_file, tmp_path / "x", guide_dir=guide)
    tr.model.train()
    loss = tr.compute_loss(tr.model, _first_batch(tr))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tr.model.parameters())
    for other in (tr.ref_model, tr.guide_model):
        assert all(p.grad is None for p in other.parameters())


def test_dropout_off_in_training_mode(tiny_model_dir, pairs_file, tmp_path):
    """Llama applies config.attention_dropout functionally (it has no nn.Dropout module): the trainer must
    switch that off too, so two training-mode forwards of one batch give the same loss."""
    from transformers import AutoModelForCausalLM

    with_dropout = _variant(tiny_model_dir, tmp_path, "dropout_model", attention_dropout=0.5)
    probe = AutoModelForCausalLM.from_pretrained(str(with_dropout), attn_implementation="eager").train()
    ids = torch.randint(0, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    a, b = probe(input_ids=ids).logits, probe(input_ids=ids).logits
    assert not torch.allclose(a, b), "the model under test must have active dropout"
    method = {**METHOD, "loss": "tgdpo", "alpha": 0.5, "guide": "g", "token_rewards": "live"}
    tr, _ = build_trainer(method, with_dropout, pairs_file, tmp_path / "x", guide_dir=with_dropout)
    batch = _first_batch(tr)
    for model in (tr.model, tr.ref_model, tr.guide_model):
        model.train()
    torch.manual_seed(1)
    first = tr.compute_loss(tr.model, batch)
    torch.manual_seed(2)
    second = tr.compute_loss(tr.model, batch)
    assert first.item() == second.item()
    for model in (tr.ref_model, tr.guide_model):
        assert torch.equal(per_token_logps(model, batch), per_token_logps(model, batch))


def test_tokenizer_without_pad_token_gets_trls_default(tiny_model_dir, pairs_file, tmp_path):
    """Llama-3 tokenizers have no pad token: the collator must pad with the id TRL would pick (EOS)."""
    no_pad = _variant(tiny_model_dir, tmp_path, "no_pad", pad_token=None)
    tr, tok = build_trainer({**METHOD, "loss": "dpo"}, no_pad, pairs_file, tmp_path / "np")
    assert tok.pad_token == tok.eos_token and tr.data_collator.pad_token_id == tok.eos_token_id
    batch = _first_batch(tr)  # pairs of different lengths: padding happens
    assert (batch["attention_mask"] == 0).any()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.eos_token_id).all()
    assert torch.isfinite(tr.compute_loss(tr.model, batch))


def test_precompute_models_sit_on_the_accelerator_device(tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    """Every model the reference/guide precompute (inside DPOTrainer.__init__) forwards must have been
    placed on accelerator.device before its first forward. On a CPU-only machine all devices are the CPU,
    so this records where each model was last sent (Module.to) when it first runs. The guide must then be
    freed: no reference copy or guide stays resident when their log-probs are precomputed."""
    from transformers import PreTrainedModel

    sent_to: dict[int, torch.device] = {}
    first_forward: dict[int, torch.device | None] = {}
    real_to = torch.nn.Module.to

    def spy_to(self, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            sent_to[id(self)] = device
        return real_to(self, *args, **kwargs)

    forwarded = []

    def record(module, _inputs):
        if isinstance(module, PreTrainedModel) and hasattr(module, "lm_head") and id(module) not in first_forward:
            first_forward[id(module)] = sent_to.get(id(module))
            forwarded.append(weakref.ref(module))

    monkeypatch.setattr(torch.nn.Module, "to", spy_to)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        guide = _perturbed(tiny_model_dir, tmp_path, "guide")
        tr, _ = build_trainer({**METHOD, "loss": "tgdpo", "alpha": 0.5, "guide": "g"}, tiny_model_dir, pairs_file,
                              tmp_path / "pc", guide_dir=guide)
    finally:
        handle.remove()
    assert len(first_forward) == 2, first_forward  # the policy (as reference) and the guide
    for device in first_forward.values():
        assert device is not None and device.type == tr.accelerator.device.type, first_forward
    # the guide is freed once its log-probs are cached (nothing keeps it alive); the policy trains on
    gc.collect()
    assert [r() is not None for r in forwarded] == [True, False] and forwarded[0]() is tr.model


def test_nan_loss_names_step_and_pairs(tiny_model_dir, pairs_file, tmp_path):
    tr, _ = build_trainer({**METHOD, "loss": "dpo"}, tiny_model_dir, pairs_file, tmp_path / "z")
    batch = _first_batch(tr)
    batch["ref_token_logps"][:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"step 0, pairs \['p0'"):
        tr.compute_loss(tr.model, batch)


def test_out_of_range_hyperparameters(tiny_model_dir, pairs_file, tmp_path):
    with pytest.raises(ValueError, match="beta must be > 0"):
        build_trainer({**METHOD, "loss": "dpo", "beta": 0.0}, tiny_model_dir, pairs_file, tmp_path / "v")


def test_paper_recipes_checkpoint_mid_epoch():
    """At paper scale (~60k pairs, 8 processes as in config/accelerate/fsdp_full_shard.yaml) every method
    writes checkpoints inside its one epoch, so a killed run resumes instead of starting over."""
    import math

    import yaml

    from reproduce.config import load_config
    from reproduce.train.run import gradient_accumulation

    root = Path(__file__).resolve().parent.parent
    processes = yaml.safe_load((root / "config/accelerate/fsdp_full_shard.yaml").read_text())["num_processes"]
    for setting, recipe in load_config({"preset": "paper"})["settings"].items():
        for name, m in recipe["methods"].items():
            steps = math.ceil(60_000 / (m["per_device_batch_size"] * gradient_accumulation(m, processes) * processes))
            every = m.get("save_steps", 500)
            every = every if every >= 1 else math.ceil(every * steps)
            assert steps // every >= 2, f"{setting}.{name}: {steps} steps per epoch, a checkpoint every {every}"


def test_report_to_defaults_to_none_and_names_the_key(tmp_path):
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    from reproduce.config import ConfigError
    from reproduce.train.run import dpo_config

    method = {**METHOD, "loss": "dpo"}
    assert dpo_config(method, tmp_path, live=False).report_to in ([], "none", ["none"])
    with pytest.raises(ConfigError, match=r"recipe key 'report_to': unknown tracker 'wandbb'"):
        dpo_config({**method, "report_to": "wandbb"}, tmp_path, live=False)
    if "wandb" in get_available_reporting_integrations():
        pytest.skip("wandb is installed here")
    with pytest.raises(ConfigError, match=r"recipe key 'report_to': tracker 'wandb' is not installed"):
        dpo_config({**method, "report_to": ["wandb"]}, tmp_path, live=False)


@pytest.mark.slow
def test_external_guide_from_a_local_directory(tiny_model_dir, pairs_file, tmp_path):
    """guide: {model: DIR} trains TGDPO against any model from the same start; one whose chat template
    differs is an error naming that model; a path that does not exist is an error naming it."""
    from reproduce.config import ConfigError, validate
    from reproduce.train.guide import external_guide_dir
    from reproduce.train.run import train_method

    guide = _perturbed(tiny_model_dir, tmp_path, "simpo_model")
    method = {**METHOD, "loss": "tgdpo", "alpha": 0.5, "guide": {"model": str(guide)}, "max_steps": 1}
    validate({"label": "x", "base": {"kind": "hf"}, "preference_data": {"kind": "hf_dataset"}, "methods": {"tgdpo": method}},
             "recipe", "test recipe")
    summary = train_method(method, tiny_model_dir, pairs_file, tmp_path / "out", cache_dir=tmp_path / "cache",
                           checkpoint_dir=tmp_path / "ck", log=lambda _: None)
    assert summary["steps"] == 1 and (tmp_path / "out/train_log.jsonl").exists()
    with pytest.raises(FileNotFoundError, match=r"guide.model ./no/such/model: no such directory"):
        external_guide_dir({"model": "./no/such/model"})

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(guide))
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(str(guide))
    with pytest.raises(ConfigError, match=f"guidance model {guide}: chat template differs"):
        train_method(method, tiny_model_dir, pairs_file, tmp_path / "out2", checkpoint_dir=tmp_path / "ck2",
                     log=lambda _: None)


def test_cache_key_of_zero3_partitioned_models_reads_the_weight_files(tiny_model_dir, tmp_path):
    """Under ZeRO-3 every rank holds empty placeholders (hash_module would give one hash for any two models
    of a shape); the cache key then comes from the files the model was loaded from."""
    from transformers import AutoModelForCausalLM

    from reproduce.train.precompute import model_identity

    other = _perturbed(tiny_model_dir, tmp_path, "other")
    models = [AutoModelForCausalLM.from_pretrained(str(d)) for d in (tiny_model_dir, other, tiny_model_dir)]
    plain = [model_identity(m) for m in models]
    for m in models:
        for i, p in enumerate(m.parameters()):
            p.ds_id = i  # what deepspeed.zero.Init leaves on a partitioned parameter
            p.data = torch.empty(0)
    partitioned = [model_identity(m) for m in models]
    assert plain[0] == plain[2] != plain[1]
    assert partitioned[0] == partitioned[2] != partitioned[1]


def test_models_load_in_the_recipe_dtype(monkeypatch):
    """bf16 recipes load bf16 weights on a GPU (not fp32 first); on the CPU, and without bf16, fp32."""
    from reproduce.train.run import model_dtype

    assert model_dtype({"bf16": True}) == torch.float32  # this machine has no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert model_dtype({"bf16": True}) == torch.bfloat16
    assert model_dtype({"bf16": False}) == model_dtype({}) == torch.float32


def test_hyperparameter_the_loss_does_not_take_is_named(tiny_model_dir, pairs_file, tmp_path):
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match=r"recipe key 'gamma': loss 'dpo' has no such hyperparameter"):
        build_trainer({**METHOD, "loss": "dpo", "gamma": 0.5}, tiny_model_dir, pairs_file, tmp_path / "g")


@pytest.mark.parametrize("loss", ["chosen_nll", "simpo"])
def test_live_run_of_a_loss_without_reference_loads_none(loss, tiny_model_dir, pairs_file, tmp_path, monkeypatch):
    """What the loss's ``@register`` flags say it reads is all that loads: a live chosen-NLL or SimPO run
    builds no reference copy (one model load: the policy)."""
    from transformers import AutoModelForCausalLM

    loads = []
    real = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **k: loads.append(a) or real(*a, **k))
    extra = {"gamma": 0.5} if loss == "simpo" else {}
    tr, _ = build_trainer({**METHOD, "loss": loss, "token_rewards": "live", **extra}, tiny_model_dir, pairs_file,
                          tmp_path / "n")
    assert len(loads) == 1 and tr.ref_model is None and not tr.needs_ref
    tr.compute_loss(tr.model, _first_batch(tr))  # and the loss runs without one


def test_effective_batch_sets_the_accumulation_for_the_processes_launched():
    """Every paper recipe (8B, 3B, Gemma) keeps the paper's 128 pairs per step on 8 GPUs (2 x 8 x 8) and on one
    (2 x 64 x 1); the rehearsal recipes, which rehearse them, follow their processes the same way."""
    from reproduce.config import ConfigError, load_config
    from reproduce.train.run import gradient_accumulation

    settings = load_config({"preset": "paper"})["settings"]
    assert set(settings) == {"llama3-8b-pairrm", "llama3-8b-armorm", "llama3.2-3b-armorm", "gemma2-2b-armorm"}
    for setting, recipe in settings.items():
        for name, m in recipe["methods"].items():
            assert "gradient_accumulation_steps" not in m, f"{setting}.{name} fixes the accumulation"
            for processes in (1, 2, 4, 8):
                pairs = m["per_device_batch_size"] * gradient_accumulation(m, processes) * processes
                assert pairs == 128, f"{setting}.{name}: {pairs} pairs per step on {processes} GPUs"
            assert gradient_accumulation(m, 1) == 64
    for recipe in load_config({"preset": "rehearsal"})["settings"].values():
        for name, m in recipe["methods"].items():
            assert "gradient_accumulation_steps" not in m, f"rehearsal {name} fixes the accumulation"
            assert gradient_accumulation(m, 2) * 2 * m["per_device_batch_size"] == m["effective_batch"]
    with pytest.raises(ConfigError, match=r"'effective_batch': 128 pairs is not a multiple of .* = 48"):
        gradient_accumulation({"effective_batch": 128, "per_device_batch_size": 6}, 8)
    with pytest.raises(ConfigError, match="give one"):
        gradient_accumulation({"effective_batch": 128, "gradient_accumulation_steps": 2})
    assert gradient_accumulation({"gradient_accumulation_steps": 3}) == 3
