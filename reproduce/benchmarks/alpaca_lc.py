"""AlpacaEval 2's length-controlled win rate and leaderboard rank, computed by alpaca_eval's own code: its GLM
(``length_controlled_v1``) fed local copies of its fitted files, and the leaderboard csv shipped in the
pinned alpaca-eval wheel. Used by :mod:`reproduce.benchmarks.alpaca_eval2`'s ``score``.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from unittest import mock

from reproduce.benchmarks.templates import ALPACA_ANNOTATOR

# Length control needs df_gamed.csv from the Hugging Face dataset tatsu-lab/alpaca_eval. We do not know
# (and will not guess) a commit hash of that dataset, so a download happens only at a revision the user
# pins (option ``lc_revision`` or $REPRODUCE_ALPACA_EVAL_HF_REVISION); an unpinned "main" is never used.
LC_REPO = "tatsu-lab/alpaca_eval"
LC_FILES = ("df_gamed.csv", "instruction_difficulty.csv")
# the AlpacaEval 2 leaderboard of this annotator, as shipped inside the pinned alpaca-eval wheel
LEADERBOARD = ("leaderboards", "data_AlpacaEval_2", f"{ALPACA_ANNOTATOR}_leaderboard.csv")


def _lc_files(options: dict) -> tuple[dict | None, str | None]:
    """Local paths of the length-control files, or (None, reason)."""
    lc_dir = options.get("lc_dir") or os.environ.get("REPRODUCE_ALPACA_EVAL_LC_DIR")
    if lc_dir:
        paths = {f: Path(lc_dir) / f for f in LC_FILES}
        if paths["df_gamed.csv"].exists():
            return {f: p for f, p in paths.items() if p.exists()}, None
        return None, f"df_gamed.csv not found in {lc_dir}"
    revision = options.get("lc_revision") or os.environ.get("REPRODUCE_ALPACA_EVAL_HF_REVISION")
    if not revision:
        return None, ("length control needs df_gamed.csv from the Hugging Face dataset tatsu-lab/alpaca_eval: "
                      "set lc_dir / $REPRODUCE_ALPACA_EVAL_LC_DIR, or pin a dataset revision with lc_revision / "
                      "$REPRODUCE_ALPACA_EVAL_HF_REVISION")
    try:
        from huggingface_hub import hf_hub_download

        return {f: Path(hf_hub_download(repo_id=LC_REPO, filename=f, repo_type="dataset", revision=revision))
                for f in LC_FILES}, None
    except Exception as e:  # network / hub errors: report, never invent a number
        return None, f"download of the length-control files at revision {revision} failed ({e})"


def length_controlled(df, options: dict) -> tuple[float | None, float | None, str | None]:
    """(LC win rate, its standard error, why not): alpaca_eval's own GLM (length_controlled_v1), fed the local
    files instead of its hub download."""
    files, reason = _lc_files(options)
    if files is None:
        return None, None, reason
    if not all(str(q).isdigit() for q in df["question_id"]):
        return None, None, "not applicable: length control needs question ids that are positions in the 805 instructions"
    from alpaca_eval.metrics import glm_winrate

    def local_download(*args, filename=None, **kwargs):
        if filename not in files:
            raise FileNotFoundError(filename)
        return str(files[filename])

    frame = df.copy()
    frame.index = [int(q) for q in frame["question_id"]]  # the GLM looks instructions up by this index
    # alpaca_eval fits on annotations in instruction order, and its cross-validation folds follow row order:
    # records in another order (e.g. answers finished out of order) would move the LC number
    frame = frame.sort_index(kind="stable")
    with mock.patch.object(glm_winrate, "hf_hub_download", local_download):
        m = glm_winrate.get_length_controlled_winrate(frame, save_weights_dir=None,
                                                      is_add_glm_preference_inplace=False)
    se = m.get("lc_standard_error")
    return float(m["length_controlled_winrate"]), (None if se is None else float(se)), None


def leaderboard_rank(result: dict) -> dict | None:
    """Where ``result`` would rank on the AlpacaEval 2 leaderboard shipped in the alpaca-eval wheel: by LC
    win rate when we have it (the leaderboard's order), else by raw win rate. None if the csv is absent."""
    import pandas as pd

    path = importlib.resources.files("alpaca_eval").joinpath(*LEADERBOARD)
    try:
        board = pd.read_csv(str(path), index_col=0)
    except OSError:
        return None
    by = "length_controlled_winrate" if result.get("length_controlled_winrate") is not None else "win_rate"
    others = board[board.index != result.get("model")][by].dropna()
    rank = 1 + int((others > result[by]).sum())
    return {"rank": rank, "of": len(others) + 1, "by": by, "leaderboard": "/".join(LEADERBOARD)}
