"""Training seeds as model names: the first seed keeps a method's own name, every further seed is a variant
``<method>-s<seed>`` with its own models, answers, judgments and scores."""

from __future__ import annotations


# The training seed of a method whose recipe names none (reproduce.train.run: DPOConfig(seed=...)).
DEFAULT_TRAIN_SEED = 42


def seed_model(method: str, seed: int) -> str:
    """The model name of ``method`` trained with a seed other than the first: ``dpo`` -> ``dpo-s43``
    (recipe method names cannot hold '-', so a seed variant never collides with a recipe method)."""
    return f"{method}-s{seed}"


def seed_variants(methods: dict, seeds: list[int]) -> dict:
    """A recipe's methods plus one entry per further training seed (``seeds[1:]``).

    The first seed keeps the method's own name and paths; its entry is left as the recipe wrote it when that
    is already its training seed (so a one-seed run and the first seed of a seeds run are the same job).
    A variant is the recipe's entry with ``seed`` replaced; a TGDPO variant is guided by the guidance model
    of the same seed. The shared starting model ("sft") and the preference pairs have no seed variants.
    """
    out = {}
    for name, method in methods.items():
        first = dict(method)
        if method.get("seed", DEFAULT_TRAIN_SEED) != seeds[0]:
            first["seed"] = seeds[0]
        out[name] = first
    for seed in seeds[1:]:
        for name, method in methods.items():
            variant = {**method, "seed": seed}
            if isinstance(method.get("guide"), str):  # an external guide ({model, revision}) has no seeds
                variant["guide"] = seed_model(method["guide"], seed)
            out[seed_model(name, seed)] = variant
    return out


def training_seeds(cfg: dict, setting: str, method: str) -> list[tuple[str, int]]:
    """(model name, training seed) of every seed of ``method`` in ``setting``, the first seed first; one
    entry when the preset lists no ``seeds``. "sft" (the shared starting model) has one, seed None."""
    if method == "sft":
        return [("sft", None)]
    recipe = cfg["settings"][setting]["methods"]
    names = [method] + [seed_model(method, s) for s in (cfg.get("seeds") or [])[1:]]
    return [(n, recipe[n].get("seed", DEFAULT_TRAIN_SEED)) for n in names]


def seed_models(cfg: dict, setting: str, method: str, all_seeds: bool = True) -> list[str]:
    """Model names of ``method``'s training seeds (``all_seeds=False``: the first seed's only, its own name)."""
    names = [n for n, _ in training_seeds(cfg, setting, method)]
    return names if all_seeds else names[:1]
