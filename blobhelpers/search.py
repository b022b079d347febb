"""blobnet's hyperparameter search, read back and summarised: stage 07 (the ISR's "future work") and its card.

A module of its own above the wings, like :mod:`blobhelpers.article`: the search is a study of stage
train's setting across DVC experiments, not a step of the blob pipeline, and keeping it (and its
stage card) out of the blob sub-packages means adding it reran no other stage.

The search itself runs as DVC experiments (``scripts/exp_grid.sh``, ``scripts/exp_random.py``) up to
stage train, and ``scripts/exp_table.py`` exports them as ``experiments/blobnet_search.csv``; the
chosen setting and today's are scored on the independent cross-simulator by
``scripts/exp_crosssim.py``. This module reads those committed files and answers: which settings
matter (the spread of the validation AUC over each parameter's levels), which setting validation
chooses, how far today's is from it, whether a random search of the same budget finds as good, and
whether the choice holds on data it was not chosen on.

Everything here is chosen on the VALIDATION set: the test set is never looked at by the search.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.errors import InputError
from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD", "PARAMS", "read_search", "read_crosssim", "choose", "find_setting", "effects", "best_so_far",
           "auc_se", "summary"]

#: The searched parameters of ``train.models.blobnet``.
PARAMS = ("learning_rate", "width", "noise_sigma")
_REQUIRED = ("experiment", "search", "commit", *PARAMS, "blobnet_val_auc", "blobnet_val_tpr_at_fpr0.03",
             "train_wall_s", "train_cpu_s")


def read_search(path: str | Path) -> pd.DataFrame:
    """The exported table (one row per experiment); InputError naming the file and the problem."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: search table not found (scripts/exp_table.py writes it)") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in _REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    if df.empty:
        raise InputError(f"{path}: holds no experiments")
    if df["experiment"].duplicated().any():
        raise InputError(f"{path}: experiment names repeat: {sorted(df.experiment[df.experiment.duplicated()])}")
    bad = df[~df["blobnet_val_auc"].between(0, 1)]
    if len(bad):
        raise InputError(f"{path}: validation AUC outside [0, 1] for {list(bad.experiment)}")
    return df


def read_crosssim(path: str | Path) -> dict:
    """``{name: cross-simulator tile AUC}`` and the set's counts from scripts/exp_crosssim.py's JSON."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        models = {k: float(v["xsim_auc"]) for k, v in d["models"].items()}
    except FileNotFoundError as exc:
        raise InputError(f"{path}: cross-simulator scores not found (scripts/exp_crosssim.py writes them)") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not the cross-simulator scores of scripts/exp_crosssim.py ({exc})") from exc
    return {"models": models, "n_tiles": int(d.get("n_tiles", 0)), "n_pos": int(d.get("n_pos", 0)),
            "n_images": int(d.get("n_images", 0))}


def choose(df: pd.DataFrame) -> pd.Series:
    """The setting validation chooses: the highest validation AUC (then TPR at FPR 0.03, then the name)."""
    order = df.sort_values(["blobnet_val_auc", "blobnet_val_tpr_at_fpr0.03", "experiment"],
                           ascending=[False, False, True], kind="mergesort")
    return order.iloc[0]


def find_setting(df: pd.DataFrame, setting: dict) -> pd.Series | None:
    """The experiment run with exactly *setting* (``learning_rate``, ``width``, ``noise_sigma``), if any."""
    hit = np.ones(len(df), bool)
    for p in PARAMS:
        hit &= np.isclose(df[p].to_numpy(float), float(setting[p]), rtol=1e-9, atol=0)
    rows = df[hit]
    return None if rows.empty else rows.iloc[0]


def effects(df: pd.DataFrame, param: str) -> pd.DataFrame:
    """Validation AUC over the levels of *param* (grid rows): mean, spread (sd), min, max and count."""
    g = df.groupby(param)["blobnet_val_auc"]
    out = pd.DataFrame({"level": list(g.groups), "n": g.size().to_numpy(), "mean": g.mean().to_numpy(),
                        "sd": g.std(ddof=1).to_numpy(), "min": g.min().to_numpy(), "max": g.max().to_numpy()})
    out.insert(0, "parameter", param)
    return out


def best_so_far(df: pd.DataFrame) -> np.ndarray:
    """The best validation AUC after each experiment, in the order the search ran them."""
    order = df.assign(_k=df.experiment.str.rpartition("-")[2].astype(int)).sort_values("_k")
    return np.maximum.accumulate(order["blobnet_val_auc"].to_numpy(float))


def auc_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an ROC AUC (Hanley & McNeil 1982).

    >>> round(auc_se(0.97, 259, 241), 4)
    0.0077
    """
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    v = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return math.sqrt(max(v, 0.0))


def summary(df: pd.DataFrame, today: dict, xsim: dict | None, n_val_pos: int, n_val_neg: int) -> dict:
    """The stage's numbers: the chosen setting, today's, the searches compared, the cost, the proposal."""
    best = choose(df)
    now = find_setting(df, today)
    se = auc_se(float(best.blobnet_val_auc), n_val_pos, n_val_neg)
    out = {"n_runs": int(len(df)), "searches": {s: int(n) for s, n in df.search.value_counts().sort_index().items()},
           "best": str(best.experiment), "best_setting": {p: best[p].item() for p in PARAMS},
           "best_val_auc": float(best.blobnet_val_auc), "best_val_tpr": float(best["blobnet_val_tpr_at_fpr0.03"]),
           "val_auc_se": se, "today_setting": {p: today[p] for p in PARAMS},
           "cost_wall_min": round(float(df.train_wall_s.sum()) / 60, 1),
           "cost_cpu_min": round(float(df.train_cpu_s.sum()) / 60, 1)}
    for s, g in df.groupby("search"):
        out[f"{s}_best_val_auc"] = float(g.blobnet_val_auc.max())
        out[f"{s}_median_val_auc"] = float(g.blobnet_val_auc.median())
    if now is not None:
        out["today"] = str(now.experiment)
        out["today_val_auc"] = float(now.blobnet_val_auc)
        out["best_minus_today_val_auc"] = float(best.blobnet_val_auc - now.blobnet_val_auc)
    if xsim is not None:
        xs = xsim["models"]
        if out["best"] in xs:
            out["best_xsim_auc"] = xs[out["best"]]
        if "today" in xs:
            out["today_xsim_auc"] = xs["today"]
        out["xsim_n_tiles"], out["xsim_n_pos"] = xsim["n_tiles"], xsim["n_pos"]
    better_val = out.get("best_minus_today_val_auc", 0.0) > se  # more than one standard error
    xsim_ok = "best_xsim_auc" in out and "today_xsim_auc" in out and out["best_xsim_auc"] >= out["today_xsim_auc"]
    out["propose_switch"] = bool(better_val and xsim_ok)
    return out


def verdict(m: dict) -> str:
    """Stage 07's verdict sentence."""
    head = (f"chosen on validation (own simulator): {metric(m, 'best')} (val AUC {fmt(metric(m, 'best_val_auc'))}) "
            f"against today's {fmt(m.get('today_val_auc'))}")
    xs = ""
    if "best_xsim_auc" in m and "today_xsim_auc" in m:
        xs = (f"; on the independent cross-simulator {fmt(m['best_xsim_auc'])} against today's "
              f"{fmt(m['today_xsim_auc'])}")
    if m.get("propose_switch"):
        return head + xs + ": propose the switch (a separate decision)."
    why = ""
    if "best_minus_today_val_auc" in m and "val_auc_se" in m and m["best_minus_today_val_auc"] <= m["val_auc_se"]:
        why = (f" (the validation gain, {fmt(m['best_minus_today_val_auc'])}, is within one standard error, "
               f"{fmt(m['val_auc_se'])}, so the pre-declared rule does not propose a switch)")
    return head + xs + ": keep today's setting" + why + "."


CARD = StageCard(
    stem="07_search",
    data="own",
    headlines=("n_runs", "best", "best_val_auc", "today_val_auc", "best_minus_today_val_auc", "val_auc_se",
               "best_xsim_auc", "today_xsim_auc", "*_best_val_auc", "propose_switch", "cost_cpu_min"),
    checks=(
        Check("chosen setting: validation AUC", "best_val_auc"),
        Check("today's setting: validation AUC", "today_val_auc"),
        Check("chosen setting: cross-simulator tile AUC (independent)", "best_xsim_auc"),
        Check("today's setting: cross-simulator tile AUC (independent)", "today_xsim_auc"),
    ),
    verdict=verdict,
)
