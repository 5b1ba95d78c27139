"""Released preference data in both layouts (princeton-nlp parquet, mk1111 alpaca ranking JSON) through the
``hf_dataset`` loader, ``reproduce prefs`` without a job, and the ``hf`` base model's fetch and checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.config import ConfigError
from reproduce.data.prefs import download_pairs, load_pairs, read_preference_dataset
from reproduce.io import DataError

ROOT = Path(__file__).resolve().parent.parent


def _strip_ids(pairs):
    return [{k: v for k, v in p.items() if k != "pair_id"} for p in pairs]


def _msgs(prompt, answer):
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def _princeton_rows(n, start=0):
    return [{"prompt_id": f"id{i}", "prompt": f"q{i}?", "chosen": _msgs(f"q{i}?", f"good {i}"),
             "rejected": _msgs(f"q{i}?", f"bad {i}"), "all_generated_responses": [f"good {i}", f"bad {i}"],
             "all_rm_scores": [1.0, 0.0]} for i in range(start, start + n)]


def _write_parquet(path: Path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _write_json(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    from reproduce.rehearsal.data import write_release_layouts

    out = tmp_path_factory.mktemp("release")
    return write_release_layouts(out, n_pairs=30, seed=3)


# --- both released layouts ---------------------------------------------------------------------------------

def test_release_layouts_load_into_identical_pairs(release):
    from reproduce.rehearsal.data import release_pairs

    from_parquet, s_parquet = read_preference_dataset(str(release["princeton-nlp"]))
    from_dir, s_dir = read_preference_dataset(str(release["princeton-nlp"].parent))
    from_json, s_json = read_preference_dataset(str(release["mk1111"]))
    assert (s_parquet["layout"], s_dir["layout"], s_json["layout"]) == ("princeton-nlp", "princeton-nlp", "mk1111")
    assert from_parquet == from_dir
    assert _strip_ids(from_parquet) == _strip_ids(from_json)
    made = release_pairs(30, seed=3)
    assert [p["prompt"][0]["content"] for p in from_json] == [m["prompt"] for m in made]
    assert [p["chosen"][0]["content"] for p in from_json] == [m["chosen"] for m in made]
    assert [p["rejected"][0]["content"] for p in from_json] == [m["rejected"] for m in made]
    assert all(m["chosen"] != m["rejected"] for m in made)
    assert s_json["rows_read"] == s_json["pairs"] == 30 and s_json["rows_dropped"] == 0


def test_release_layout_files_have_the_published_columns(release):
    import pyarrow.parquet as pq

    assert set(pq.read_schema(release["princeton-nlp"]).names) == {
        "prompt_id", "prompt", "chosen", "rejected", "all_generated_responses", "all_rm_scores"}
    rows = json.loads(release["mk1111"].read_text())
    assert isinstance(rows, list) and {tuple(sorted(r)) for r in rows} == {("chosen", "instruction", "rejected")}


def test_release_pairs_are_deterministic_and_short(tmp_path):
    from reproduce.rehearsal.data import release_pairs
    from reproduce.tiny.tokenizer import train_tokenizer

    a, b, other = release_pairs(256, seed=0), release_pairs(256, seed=0), release_pairs(256, seed=1)
    assert a == b and a != other
    assert len({p["prompt"] for p in a}) == 256
    texts = [p["prompt"] for p in a] + [p["chosen"] for p in a] + [p["rejected"] for p in a]
    tok = train_tokenizer(texts, 300, tmp_path)
    longest = max(len(tok(p["prompt"] + " " + max(p["chosen"], p["rejected"], key=len))["input_ids"]) for p in a)
    assert longest < 100, longest


def test_princeton_layout_from_a_hub_shaped_directory(tmp_path):
    _write_parquet(tmp_path / "data/train-00000-of-00002.parquet", _princeton_rows(3))
    _write_parquet(tmp_path / "data/train-00001-of-00002.parquet", _princeton_rows(2, start=3))
    _write_parquet(tmp_path / "data/test-00000-of-00001.parquet", _princeton_rows(4, start=100))
    (tmp_path / "README.md").write_text("card")
    _write_json(tmp_path / ".cache/huggingface/train.json", {"not": "data"})
    pairs, summary = read_preference_dataset(str(tmp_path))
    assert [p["pair_id"] for p in pairs] == ["id0", "id1", "id2", "id3", "id4"]
    assert pairs[4]["chosen"] == [{"role": "assistant", "content": "good 4"}]
    assert pairs[4]["prompt"] == [{"role": "user", "content": "q4?"}]
    assert len(summary["files"]) == 2
    test_pairs, _ = read_preference_dataset(str(tmp_path), split="test")
    assert [p["pair_id"] for p in test_pairs] == ["id100", "id101", "id102", "id103"]
    with pytest.raises(DataError, match=r"no files for split 'validation' \(splits found: test, train\)"):
        read_preference_dataset(str(tmp_path), split="validation")


def test_mk1111_layout_from_jsonl_and_a_llama_factory_directory(tmp_path):
    rows = [{"instruction": "Add 2 and 3.", "chosen": "5", "rejected": "6"},
            {"instruction": "Translate:", "input": "bonjour", "chosen": "hello", "rejected": "goodbye"},
            {"instruction": "Say hi.", "input": "", "chosen": "hi", "rejected": "bye"}]
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, summary = read_preference_dataset(str(jsonl))
    # LLaMA-Factory's convention: instruction and a non-empty input joined by a newline
    assert [p["prompt"][0]["content"] for p in pairs] == ["Add 2 and 3.", "Translate:\nbonjour", "Say hi."]
    assert summary["layout"] == "mk1111" and summary["rows_with_input_joined"] == 1
    # a directory with the authors' file beside LLaMA-Factory's dataset_info.json (metadata, not rows)
    d = tmp_path / "tgdpo_data"
    _write_json(d / "llama3-8b-instruct-ultrafeedback-armorm.json", rows)
    _write_json(d / "dataset_info.json", {"x": {"file_name": "llama3-8b-instruct-ultrafeedback-armorm.json"}})
    from_dir, s = read_preference_dataset(str(d))
    assert from_dir == pairs and s["files"] == [str(d / "llama3-8b-instruct-ultrafeedback-armorm.json")]


def test_max_pairs_stops_early_and_says_so(release):
    pairs, summary = read_preference_dataset(str(release["mk1111"]), max_pairs=7)
    assert len(pairs) == summary["pairs"] == 7 and summary["read_whole_dataset"] is False
    _, whole = read_preference_dataset(str(release["mk1111"]), max_pairs=30)
    assert whole["read_whole_dataset"] is True


def test_download_pairs_uses_local_dir_and_names_the_key_when_missing(release, tmp_path):
    cfg = {"kind": "hf_dataset", "dataset": "mk1111/never-fetched", "revision": "abc", "split": "train",
           "local_dir": str(release["princeton-nlp"].parent), "max_pairs": 5}
    pairs, summary = download_pairs(cfg)
    assert len(pairs) == 5 and summary["layout"] == "princeton-nlp"
    with pytest.raises(DataError, match=r"^preference_data.local_dir .*nowhere: no such file or directory$"):
        download_pairs({**cfg, "local_dir": str(tmp_path / "nowhere")})


def test_hub_source_goes_through_load_dataset_at_the_revision(release, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(repo_id, revision=None, split=None):
        calls.append((repo_id, revision, split))
        return datasets.Dataset.from_parquet(str(release["princeton-nlp"]))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs, summary = read_preference_dataset("princeton-nlp/llama3-ultrafeedback-armorm", "0123abc", "train")
    assert calls == [("princeton-nlp/llama3-ultrafeedback-armorm", "0123abc", "train")]
    local, _ = read_preference_dataset(str(release["princeton-nlp"]))
    assert pairs == local and summary["layout"] == "princeton-nlp"

    def unreachable(*a, **k):
        raise ConnectionError("Couldn't reach 'x' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match=r"^mk1111/x@r1 split 'train': cannot load from the Hugging Face hub "
                                        r"\(ConnectionError: Couldn't reach 'x' on the Hub .*\)$"):
        read_preference_dataset("mk1111/x", "r1", "train")


# --- bad input ---------------------------------------------------------------------------------------------

def test_unknown_layout_names_the_file_and_what_each_layout_lacks(tmp_path):
    f = _write_json(tmp_path / "sharegpt.json", [{"conversations": [], "chosen": {"from": "gpt", "value": "a"},
                                                 "rejected": {"from": "gpt", "value": "b"}}])
    with pytest.raises(DataError) as info:
        read_preference_dataset(str(f))
    msg = str(info.value)
    assert msg.startswith(f"{f}: unknown preference-data layout (columns: conversations, chosen, rejected)")
    assert "princeton-nlp parquet (prompt + message lists) lacks prompt;" in msg
    assert "mk1111 LLaMA-Factory alpaca ranking JSON lacks instruction" in msg
    assert "\n" not in msg
    p = _write_parquet(tmp_path / "other.parquet", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError, match=r"other.parquet: unknown .* lacks prompt, chosen, rejected; .* lacks instruction, chosen, rejected$"):
        read_preference_dataset(str(p))


def test_columns_of_both_layouts_are_ambiguous(tmp_path):
    f = _write_json(tmp_path / "both.json", [{"prompt": "p", "instruction": "i", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match=r"both.json: columns fit several layouts \(princeton-nlp, mk1111\)"):
        read_preference_dataset(str(f))


def test_empty_answers_are_dropped_and_counted_by_reason(tmp_path):
    rows = _princeton_rows(6)
    rows[1]["chosen"][-1]["content"] = ""
    rows[3]["rejected"][-1]["content"] = "   "
    rows[4]["prompt"] = ""
    f = _write_parquet(tmp_path / "train.parquet", rows)
    pairs, summary = read_preference_dataset(str(f))
    assert [p["pair_id"] for p in pairs] == ["id0", "id2", "id5"]
    assert summary["rows_read"] == 6 and summary["pairs"] == 3 and summary["rows_dropped"] == 3
    assert summary["dropped_by_reason"] == {"empty chosen answer": 1, "empty rejected answer": 1, "empty prompt": 1}
    assert [(e["record"], e["reason"]) for e in summary["dropped_examples"]] == [
        (1, "empty chosen answer"), (3, "empty rejected answer"), (4, "empty prompt")]
    mk = _write_json(tmp_path / "mk.json", [{"instruction": "i", "chosen": None, "rejected": "r"},
                                            {"instruction": "j", "chosen": "c", "rejected": ""}])
    with pytest.raises(DataError, match=r"mk.json: no usable preference pairs \(2 rows read, dropped: "
                                        r"\{\"empty chosen answer\": 1, \"empty rejected answer\": 1\}\)"):
        read_preference_dataset(str(mk))


@pytest.mark.parametrize("rows, pattern", [
    ([{"prompt": "p", "chosen": "a string", "rejected": []}], r"record 0: 'chosen' must be a non-empty list"),
    ([{"prompt": "p", "chosen": [{"role": "user", "content": "p"}], "rejected": _msgs("p", "b")}],
     r"record 0: 'chosen' must end with the assistant answer, its last message has role 'user'"),
    ([{"instruction": "i", "chosen": "a", "rejected": "b"}, {"instruction": "j", "chosen": "a"}],
     r"record 1: lacks 'rejected'"),
    ([{"instruction": "i", "chosen": ["a"], "rejected": "b"}], r"record 0: 'chosen' is a list, expected a string"),
])
def test_malformed_rows_name_file_and_record(tmp_path, rows, pattern):
    f = _write_json(tmp_path / "rows.json", rows)
    with pytest.raises(DataError, match=r"rows.json: " + pattern):
        read_preference_dataset(str(f))


# --- reproduce prefs without --job -------------------------------------------------------------------------

def test_cli_prefs_without_job_writes_pairs_and_summary(release, tmp_path):
    out = tmp_path / "out" / "pairs.jsonl"
    r = _cli("prefs", "--dataset", str(release["princeton-nlp"].parent), "--out", str(out), "--max-pairs", "12")
    assert r.returncode == 0, r.stderr
    pairs = load_pairs(out)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert len(pairs) == 12 == summary["pairs"] and summary["layout"] == "princeton-nlp"
    assert summary["rows_read"] == 12 and summary["rows_dropped"] == 0 and summary["read_whole_dataset"] is False
    expected, _ = read_preference_dataset(str(release["princeton-nlp"]), max_pairs=12)
    assert pairs == expected
    r2 = _cli("prefs", "--dataset", str(release["mk1111"]), "--out", str(tmp_path / "mk.jsonl"))
    assert r2.returncode == 0, r2.stderr
    assert _strip_ids(load_pairs(tmp_path / "mk.jsonl")) == _strip_ids(read_preference_dataset(str(release["mk1111"]))[0])


@pytest.mark.parametrize("name, content, pattern", [
    ("broken.json", '[{"instruction": "i", "chosen": "a", "rejected": "b"},\n{"instruction": ',
     r"broken.json: not valid JSON \(Expecting .* at line 2\)"),
    ("broken.jsonl", '{"instruction": "i", "chosen": "a", "rejected": "b"}\n{"instruction": "j", "cho\n',
     r"broken.jsonl:2: not valid JSON"),
    ("broken.parquet", None, r"broken.parquet: not a readable parquet file"),
])
def test_cli_broken_file_fails_naming_it_and_leaves_no_output(tmp_path, release, name, content, pattern):
    f = tmp_path / name
    if content is None:  # a parquet file cut short, as by an interrupted download
        data = release["princeton-nlp"].read_bytes()
        f.write_bytes(data[: len(data) // 2])
    else:
        f.write_text(content)
    out = tmp_path / "o" / "pairs.jsonl"
    r = _cli("prefs", "--dataset", str(f), "--out", str(out))
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and __import__("re").search(pattern, lines[0]), r.stderr
    assert not out.exists() and not out.with_suffix(".summary.json").exists()
    assert not (out.parent.exists() and any(out.parent.iterdir()))


def test_cli_prefs_flags_have_help_and_need_a_source():
    r = _cli("prefs", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps help lines
    for flag, words in [("--dataset SOURCE", "a hub dataset id, a local directory"), ("--revision", "the commit or tag"),
                        ("--split", "the split to read"), ("--max-pairs", "stop after this many pairs"),
                        ("--base", "the model that samples the pairs")]:
        assert flag in text and words in text, flag
    r = _cli("prefs", "--out", "x.jsonl")
    assert r.returncode == 2 and "give --dataset SOURCE" in r.stderr


def test_cli_prefs_with_job_still_reads_the_preset_data(release, tmp_path):
    from reproduce.cli import main

    job = {"preference_data": {"kind": "hf_dataset", "dataset": "mk1111/x", "revision": "main",
                               "local_dir": str(release["mk1111"])}, "seed": 0}
    out = tmp_path / "prefs.jsonl"
    assert main(["prefs", "--job", json.dumps(job), "--out", str(out)]) == 0
    assert len(load_pairs(out)) == 30 and (tmp_path / "prefs.config.json").exists()
    assert json.loads(out.with_suffix(".summary.json").read_text())["layout"] == "mk1111"
    on_policy = {"preference_data": {"kind": "on_policy"}, "base": {"kind": "tiny_sft", "task": "addition"}}
    assert main(["prefs", "--job", json.dumps(on_policy), "--out", str(tmp_path / "op.jsonl")]) == 2
    assert not (tmp_path / "op.jsonl").exists()


# --- the hf base model -------------------------------------------------------------------------------------

def _model_dir(path: Path, chat_template: bool = True) -> Path:
    """A model directory as prepare_base sees it: config, placeholder weights, a tokenizer."""
    from reproduce.tiny.tokenizer import train_tokenizer

    path.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(["What is 1 + 2?", "3"], 300, path)
    if not chat_template:
        tok.chat_template = None
        for f in ("chat_template.jinja", "chat_template.json"):
            (path / f).unlink(missing_ok=True)
        cfg = json.loads((path / "tokenizer_config.json").read_text())
        cfg.pop("chat_template", None)
        (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "model.safetensors").write_bytes(b"placeholder")
    return path


LLAMA3_REPO_FILES = ["config.json", "generation_config.json", "model-00001-of-00004.safetensors",
                     "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                     "special_tokens_map.json", "chat_template.jinja", "LICENSE", "README.md", "USE_POLICY.md",
                     "original/consolidated.00.pth", "original/params.json", "original/tokenizer.model"]


def test_snapshot_download_fetches_only_what_the_model_needs(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import filter_repo_objects

    from reproduce.base.models import prepare_base

    snapshot = _model_dir(tmp_path / "snapshot")
    calls = []

    def fake_snapshot_download(repo_id, **kw):
        calls.append((repo_id, kw))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    out = tmp_path / "base"
    summary = prepare_base({"kind": "hf", "model": "meta-llama/Meta-Llama-3-8B-Instruct", "revision": "abc123"},
                           out, log=lambda m: None)
    (repo_id, kw), = calls
    assert repo_id == "meta-llama/Meta-Llama-3-8B-Instruct" and kw["revision"] == "abc123"
    fetched = set(filter_repo_objects(LLAMA3_REPO_FILES, allow_patterns=kw["allow_patterns"],
                                      ignore_patterns=kw.get("ignore_patterns")))
    assert not any(f.startswith("original/") for f in fetched), fetched
    assert {"config.json", "generation_config.json", "model-00001-of-00004.safetensors",
            "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "chat_template.jinja"} <= fetched
    assert "tokenizer.model" in set(filter_repo_objects(["tokenizer.model"], allow_patterns=kw["allow_patterns"]))
    assert (out / "model.safetensors").is_symlink() and (out / "model.safetensors").resolve() == (snapshot / "model.safetensors").resolve()
    assert summary["source"] == str(snapshot)


def test_local_dir_missing_or_not_a_model_is_one_line_naming_the_key(tmp_path):
    from reproduce.base.models import prepare_base

    out = tmp_path / "base"
    with pytest.raises(ConfigError, match=r"^base.local_dir .*/absent: no such directory$"):
        prepare_base({"kind": "hf", "model": "m", "local_dir": str(tmp_path / "absent")}, out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^base.local_dir .*/empty: no config.json \(not a Hugging Face model directory\)$"):
        prepare_base({"kind": "hf", "model": "m", "local_dir": str(tmp_path / "empty")}, out)
    assert not out.exists()
    r = _cli("base", "--job", json.dumps({"base": {"kind": "hf", "model": "m", "local_dir": str(tmp_path / "absent")}}),
             "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: base.local_dir {tmp_path / 'absent'}: no such directory"]


def test_local_model_without_chat_template_is_an_error_naming_the_dir(tmp_path):
    from reproduce.base.models import prepare_base

    good = _model_dir(tmp_path / "good")
    prepare_base({"kind": "hf", "model": "m", "local_dir": str(good)}, tmp_path / "out_good")
    assert (tmp_path / "out_good" / "config.json").is_symlink()
    bare = _model_dir(tmp_path / "bare", chat_template=False)
    with pytest.raises(DataError, match=rf"^base model {bare}: tokenizer has no chat template"):
        prepare_base({"kind": "hf", "model": "m", "local_dir": str(bare)}, tmp_path / "out_bare")
    assert not (tmp_path / "out_bare").exists()
