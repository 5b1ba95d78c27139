"""A synthetic results tree for the HTML report, at any preset's size, in the workflow's exact formats.

Answers, judgments and scores are written for every (benchmark, setting, method, judge) of a config: the
judgment records come from each protocol's own ``make_record`` (with made-up verdicts, explanations and
log-probs, varied by a seeded generator), the score files from each protocol's own ``score`` and the tables
from the real table, agreement and differences builders. The numbers are meaningless; the files' layout,
sizes and counts are those of a real run (the paper preset: 4 settings x 4 methods x (805 + 500 + 80)
questions x 3 judges). Used by tests/test_report_html.py and benchmarks/report_html.py; never by a stage.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the model answer gives a clear and correct account of each step with an example while the other "
         "response misses a detail about the question and repeats itself so the first one is better overall").split()

# synthetic question counts when a benchmark's own files are not at hand (the official sizes)
OFFICIAL_SIZES = {"alpaca_eval2": 805, "arena_hard": 500, "mt_bench": 80}


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def _questions(bench: dict) -> list[dict]:
    from reproduce.benchmarks.questions import load_questions

    try:
        return load_questions(bench)
    except Exception:  # noqa: BLE001 — no mirror of the official files: made-up questions of the official count
        n = OFFICIAL_SIZES[bench["protocol"]]
        turns = 2 if bench["protocol"] == "mt_bench" else 1
        cats = ["writing", "math", "coding", "reasoning"]
        return [{"question_id": str(i), "category": cats[i % 4], "turns": [f"synthetic question {i} turn {t + 1}"
                                                                         for t in range(turns)],
                 "reference": [f"reference {i}"] * turns} for i in range(n)]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _verdicts(protocol: str, rng: random.Random, q: dict, skill: float, long_text: bool) -> tuple[dict, dict]:
    """Made-up (verdicts, replies) of one question in the protocol's game keys."""
    jt = (lambda: _text(rng, 200, 500)) if long_text else (lambda: _text(rng, 3, 8))
    if protocol == "alpaca_eval2":
        from reproduce.benchmarks.alpaca_eval2 import is_switched

        p_model = min(0.99, max(0.01, rng.random() * 0.6 + skill * 0.4))
        game = "switched" if is_switched(q["turns"][0]) else "unswitched"
        p_m = p_model if game == "switched" else 1 - p_model  # m = the output shown first
        lp = {"m": round(__import__("math").log(p_m), 4), "M": round(__import__("math").log(1 - p_m), 4)}
        return {game: 1 + p_model}, {game: {"text": "m" if p_m > 0.5 else "M", "top_logprobs": lp}}
    if protocol == "arena_hard":
        labels = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
        v, r = {}, {}
        for g in ("game1", "game2"):
            k = min(4, max(0, int(rng.random() * 3 + skill * 2.5)))
            label = labels[k] if g == "game1" else labels[4 - k]
            v[g], r[g] = label, {"text": f"{jt()} My final verdict is: [[{label}]]"}
        return v, r
    v, r = {}, {}
    for t in range(1, len(q["turns"]) + 1):
        s = float(min(10, max(1, round(rng.gauss(4 + 4 * skill, 1.5)))))
        v[f"single-t{t}"], r[f"single-t{t}"] = s, {"text": f"{jt()} Rating: [[{s:g}]]"}
        for g in ("g1", "g2"):
            w = rng.choice(["A", "B", "tie"])
            v[f"pair-t{t}-{g}"], r[f"pair-t{t}-{g}"] = w, {"text": f"{jt()} [[{'C' if w == 'tie' else w}]]"}
    return v, r


def write_report_fixture(root: Path, cfg: dict, seed: int = 0, long_text: bool = True, rounds: int = 20,
                         questions: dict | None = None) -> Path:
    """Write ``root/results`` for ``cfg`` (layout above) and its tables; returns the results directory.

    ``long_text``: answers of 100-500 words and judge explanations of 200-500 words (LLM-sized), else a few words.
    ``rounds``: bootstrap rounds of Arena-Hard scoring and of the method differences (few: this is a layout
    fixture, not a statistic). ``questions``: {benchmark: questions} to use instead of the benchmark's files.
    """
    from reproduce.benchmarks.protocol import get_protocol
    from reproduce.io import atomic_write_json
    from reproduce.report.agreement import build_agreement
    from reproduce.report.differences import build_differences, resolve_pairs
    from reproduce.report.table1 import build_table1
    from reproduce.workflow import Paths

    root = Path(root)
    res = root / "results"
    P = Paths(cfg, results=str(res))
    rng = random.Random(seed)
    skills = {m: 0.2 + 0.6 * i / max(1, len(cfg["methods"]) - 1) for i, m in enumerate(cfg["methods"])}
    for b, bc in cfg["benchmarks"].items():
        protocol = bc["protocol"]
        proto = get_protocol(protocol)
        qs = (questions or {}).get(b) or _questions(bc)
        for s in cfg["settings"]:
            answers = {}
            for m in cfg["methods"]:
                rows = []
                for q in qs:
                    ts = [_text(rng, 100, 500) if long_text else _text(rng, 1, 4) for _ in q["turns"]]
                    rows.append({"question_id": q["question_id"], "model": m, "turns": ts,
                                 "meta": {"n_tokens": [len(t.split()) for t in ts]}})
                answers[m] = {r["question_id"]: r for r in rows}
                _write_jsonl(Path(P.answers(b, s, m)), rows)
                Path(P.answers(b, s, m)).with_suffix(".config.json").write_text(json.dumps({"config_hash": f"ans-{m}"}))
            ref_path = Path(P.reference(b, s))
            if not ref_path.exists():
                _write_jsonl(ref_path, [{"question_id": q["question_id"], "model": "baseline",
                                         "turns": [_text(rng, 40, 200) if long_text else "baseline" for _ in q["turns"]]}
                                        for q in qs])
            refs = {json.loads(line)["question_id"]: json.loads(line) for line in ref_path.read_text().splitlines()}
            for j in cfg["judges"]:
                for m in cfg["methods"]:
                    recs = []
                    for q in qs:
                        verdicts, replies = _verdicts(protocol, rng, q, skills[m], long_text)
                        recs.append(proto.make_record(q, answers[m][q["question_id"]], refs.get(q["question_id"]), bc,
                                                      j, verdicts, replies))
                    jpath = Path(P.judgments(b, j, s, m))
                    _write_jsonl(jpath, recs)
                    jpath.with_suffix(".config.json").write_text(json.dumps(
                        {"judge": j, "benchmark": b, "benchmark_config": {"version": bc.get("version")},
                         "judge_config": cfg["judges"][j], "config_hash": f"judge-{j}"}))
                    opts = {"length_controlled": False} if protocol == "alpaca_eval2" else (
                        {"rounds": rounds} if protocol == "arena_hard" else {})
                    result = proto.score(recs, bc, **opts)
                    atomic_write_json(Path(P.score(b, j, s, m)), {"benchmark": b, "protocol": protocol,
                                                                  "judgments": str(jpath.relative_to(root)), **result})
    for s in cfg["settings"]:
        for m in cfg["methods"]:
            Path(P.model_dir(s, m)).mkdir(parents=True, exist_ok=True)
            (Path(P.model_dir(s, m)) / "resolved_config.json").write_text(json.dumps({"config_hash": f"ckpt-{m}"}))
    tables = res / "tables"
    cfg = {**cfg, "accept_incomplete": True}
    quiet = lambda *a, **k: None  # noqa: E731
    for j in cfg["judges"]:
        build_table1(cfg, j, res, tables, log=quiet, stem="table1" if j == cfg["table_judge"] else None)
    if len(cfg["judges"]) > 1:
        build_agreement(cfg, res, tables, log=quiet)
    if resolve_pairs(cfg):
        build_differences(cfg, res, tables, rounds=rounds, log=quiet)
    return res


def write_token_fixture(results: Path, cfg: dict, tokenizer_dir: Path, n_pairs: int, long_text: bool = True,
                        seed: int = 0) -> None:
    """What the token-reward strips read, for every setting with a TGDPO method, as a training job leaves it:
    the reference's tokenizer (``tokenizer_dir``'s files in ``models/<setting>/sft``), ``n_pairs`` preference
    pairs (answers of 100-500 words with ``long_text``), a per-token log-prob cache of random reference and
    guide values, one per completion token as training tokenises it, and the index beside the TGDPO model."""
    import torch
    from transformers import AutoTokenizer

    from reproduce.data.prefs import write_pairs
    from reproduce.io import atomic_write_json
    from reproduce.paths import ResultPaths
    from reproduce.report.token_rewards import completion_ids
    from reproduce.train.precompute import CACHE_FORMAT, atomic_torch_save, pack

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    paths = ResultPaths(results)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    for s, recipe in cfg["settings"].items():
        tgdpo = [m for m in cfg["methods"] if (recipe["methods"].get(m) or {}).get("loss") == "tgdpo"]
        if not tgdpo:
            continue
        sft = Path(paths.model_dir(s, "sft"))
        sft.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(sft))
        words = (100, 500) if long_text else (1, 4)
        pairs = [{"pair_id": f"{s}-{i}", "prompt": [{"role": "user", "content": _text(rng, 10, 40)}],
                  "chosen": [{"role": "assistant", "content": _text(rng, *words)}],
                  "rejected": [{"role": "assistant", "content": _text(rng, *words)}],
                  "scores": {"chosen": round(rng.uniform(0, 1), 3), "rejected": round(rng.uniform(-1, 0), 3)}}
                 for i in range(n_pairs)]
        write_pairs(pairs, {"pairs": n_pairs}, paths.prefs(s))
        columns: dict[str, list] = {}
        for pair in pairs:
            ids = completion_ids(tok, pair, recipe.get("chat_template_kwargs"))
            for src in ("ref", "guide"):
                for side in ("chosen", "rejected"):
                    columns.setdefault(f"{src}_{side}_token_logps", []).append(
                        -torch.rand(len(ids[side]), generator=gen) * 5)
        cache = results / "cache" / "token_logps" / s / "token_logps-synthetic.pt"
        atomic_torch_save({"format": CACHE_FORMAT, "columns": {c: pack(v) for c, v in columns.items()}}, cache)
        for m in tgdpo:
            index = Path(paths.token_index(s, m))
            index.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(index, {"cache": str(cache), "key": "synthetic", "format": CACHE_FORMAT,
                                      "sources": ["ref", "guide"], "max_length": None, "truncation_mode": "keep_start",
                                      "pair_ids": [p["pair_id"] for p in pairs]})
