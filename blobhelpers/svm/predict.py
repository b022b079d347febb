"""Predictions on a feature table: ``predictions.csv``, ``clf_report.txt``, ``compromised.txt``.

The outputs mean what spacekit's do: ``y_proba`` is P(misaligned), ``y_pred`` 1 for a suspicious
(compromised) alignment (``y_proba >= threshold``, the project's one convention), ``compromised.txt``
lists the flagged ``index`` values, one per line, and ``clf_report.txt`` summarises the run (model,
``cat`` encoding and how it was decided, mean probability, counts, flagged per detector).

``cat`` encoding: ``cat_encoding="auto"`` (the CLI default) detects it from the file
(:func:`~blobhelpers.svm.features.resolve_cat_encoding`) and refuses a file it cannot decide; an
explicit encoding that the file contradicts is refused too (``force_cat_encoding`` overrides).

Which model decides which row (column ``decided_by``):

* a blobhelpers tabular model folder (default ``build/svm/model``): every row, at its threshold;
  with ``--images`` the released ensemble's probability is added as ``image_model_proba``;
* spacekit's released ensemble (``--model svm_align.zip``): the rows that have images (threshold
  0.5, spacekit's rule); the other rows: the tabular model (``tabular_model``, default
  ``build/svm/model``) at its threshold;
* this project's image model (``--model build/svm/image_model``, ``ensemble.json``, stage 14,
  trained on simulated visits only): the rows that have images get its image + tabular
  probability at its threshold; the rows without images are decided by the **real tabular
  model** (``tabular_model``), never by the image model's own tabular part (fitted on ~150
  simulated products, with a threshold chosen on its own out-of-fold predictions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import project_root, write_text
from blobhelpers.core.stats import flag
from blobhelpers.svm.ensemble import load_image_model
from blobhelpers.svm.features import AUTO, CANONICAL, DETECTORS, FEATURES, read_features, recode_cat
from blobhelpers.svm.images import is_image_model, load_images, load_spacekit_model, spacekit_predict
from blobhelpers.svm.models import load_model

__all__ = ["default_model_path", "default_image_model_path", "predict_file", "classification_report"]


def default_model_path() -> Path:
    return project_root() / "build" / "svm" / "model"


def default_image_model_path() -> Path:
    return project_root() / "data" / "svm" / "pretrained_spacekit" / "svm_align.zip"


def classification_report(preds: pd.DataFrame, group: str = "SVM-DATA", model: str = "", threshold=None,
                          cat_encoding: str = "") -> str:
    """spacekit-style text report of a predictions table (``y_proba``, ``y_pred``, ``det``).

    Unlike spacekit's it carries no run date or time: the text is a function of its arguments, so
    identical results give identical bytes (a DVC output that changes only when the predictions do).
    """
    sep = "---" * 7
    p = preds["y_pred"].astype(int)
    lines = ["CLASSIFICATION REPORT", f"data:  {group}"]
    if model:
        lines.append(f"model: {model}" + (f" (threshold {threshold:.4g})" if threshold is not None else ""))
    if cat_encoding:
        lines.append(f"cat encoding: {cat_encoding}")
    if "decided_by" in preds:
        for who, n in preds["decided_by"].value_counts().sort_index().items():
            lines.append(f"decided by {who}: {n}")
    lines += [sep, f"Mean Probability Score:  {preds['y_proba'].mean():.4f}",
              f"Standard Deviation:  {preds['y_proba'].std(ddof=1) if len(preds) > 1 else 0.0:.4f}", sep,
              "Alignment Evaluation", "0.0=aligned, 1.0=suspicious", "y_pred\tcnt\tpct"]
    for v in (0, 1):
        n = int((p == v).sum())
        lines.append(f"{v:.1f}\t{n}\t{n / len(p):.4f}")
    lines += [sep, "Misalignment counts by Detector", "det\tflagged\t(total)\tpct"]
    for name, code in DETECTORS.items():
        s = preds["det"].astype(int) == code
        n, k = int(s.sum()), int((s & (p == 1)).sum())
        lines.append(f"{name}\t{k} \t ({n}) \t {100 * k / n:.1f}%" if n else f"{name}\t0 \t (0) \t -")
    return "\n".join(lines) + "\n"


def _tabular_for_rest(tabular_model, df, rest, images, why: str):
    """The real tabular model for the rows *rest* that no image model decides (InputError if there is none)."""
    tab_path = Path(tabular_model) if tabular_model else default_model_path()
    try:
        return load_model(tab_path)
    except InputError as exc:
        missing = df.loc[rest, "index"].tolist()[:5]
        raise InputError(f"{images or 'no --images'}: {int(rest.sum())} visit(s) without images (e.g. {missing}) "
                         f"and no tabular model to decide them ({why}; {exc})") from exc


def predict_file(features_csv: str | Path, out: str | Path, model: str | Path | None = None,
                 images: str | Path | None = None, cat_encoding: str = AUTO, threshold: float | None = None,
                 image_model: str | Path | None = None, group: str | None = None,
                 tabular_model: str | Path | None = None, force_cat_encoding: bool = False) -> pd.DataFrame:
    """Predict every row of *features_csv*; write the three output files into *out*; return the table.

    *tabular_model* (default ``build/svm/model``) decides the rows without images when *model* is an
    image model. See the module docstring for which model decides which row.
    """
    features_csv = Path(features_csv)
    df = read_features(features_csv, cat_encoding, force_cat_encoding=force_cat_encoding)
    used_enc = df.attrs.get("cat_encoding", CANONICAL)
    enc_note = f"{used_enc} ({df.attrs.get('cat_encoding_note', '')})"
    if "label" in df:
        df = df.drop(columns="label")  # ignored, as documented
    model = Path(model) if model else default_model_path()
    n = len(df)
    proba, decided = np.full(n, np.nan), np.array([""] * n, dtype=object)
    thr = np.full(n, np.nan)
    extra = {}
    if (model / "ensemble.json").is_file():  # this project's image model (stage 14)

        im = load_image_model(model)
        has = np.zeros(n, bool)
        arr = None
        if images is not None:
            found, got = load_images(images, df["index"])
            if found:
                pos = {k: i for i, k in enumerate(df["index"])}
                at = [pos[i] for i in found]
                has[at] = True
                arr = np.zeros((n, *got.shape[1:]), np.float32)
                arr[at] = got
        if has.any():
            s = np.flatnonzero(has)
            sub = df.iloc[s].reset_index(drop=True)
            proba[s] = im.predict_proba(sub, arr[s], has_image=np.ones(len(s), bool))
            thr[s] = im.threshold if threshold is None else threshold
            decided[s] = f"{im.kind}:image+tabular (simulated)" if im.kind == "stacked" else f"{im.kind}:image"
        rest = ~has
        if rest.any():
            tab = _tabular_for_rest(tabular_model, df, rest, images, f"the {im.kind} image model decides only visits "
                                                                     f"with images")
            proba[rest] = tab.predict_proba(df[rest])
            thr[rest] = tab.threshold if threshold is None else threshold
            decided[rest] = f"tabular:{tab.name}"
        name = f"{model.name} ({im.kind}, visits with images) + tabular"
    elif is_image_model(model):
        if images is None:
            raise InputError(f"{model}: spacekit's ensemble needs --images (the tabular model decides without them)")
        ens = load_spacekit_model(model)
        found, arr = load_images(images, df["index"])
        if found:
            rows = df["index"].isin(found).to_numpy()
            sub = df.set_index("index").loc[found].reset_index()
            pos = {k: i for i, k in enumerate(df["index"])}
            at = [pos[i] for i in found]
            proba[at] = spacekit_predict(ens, sub, arr)
            thr[at] = 0.5 if threshold is None else threshold
            decided[at] = f"image:{model.name}"
        else:
            rows = np.zeros(n, bool)
        rest = ~rows
        if rest.any():
            tab = _tabular_for_rest(tabular_model, df, rest, images, "spacekit's ensemble needs images")
            proba[rest] = tab.predict_proba(df[rest])
            thr[rest] = tab.threshold if threshold is None else threshold
            decided[rest] = f"tabular:{tab.name}"
        name = f"{model.name} (images) + tabular"
    else:
        tab = load_model(model)
        proba = tab.predict_proba(df)
        thr[:] = tab.threshold if threshold is None else threshold
        decided[:] = f"tabular:{tab.name}"
        name = tab.name
        if images is not None:
            imodel = Path(image_model) if image_model else default_image_model_path()
            ens = load_spacekit_model(imodel)
            found, arr = load_images(images, df["index"])
            col = np.full(n, np.nan)
            if found:
                pos = {k: i for i, k in enumerate(df["index"])}
                col[[pos[i] for i in found]] = spacekit_predict(ens, df.set_index("index").loc[found].reset_index(), arr)
            extra["image_model_proba"] = col
    y_pred = flag(proba, thr).astype(int)
    feats = df[list(FEATURES)].copy()
    feats["cat"] = recode_cat(feats["cat"].astype(int), CANONICAL, used_enc)  # as given in the input
    for c in ("numexp", "nmatches", "point", "segment", "det", "wcs", "cat"):
        feats[c] = feats[c].astype(np.int64)
    preds = pd.concat([pd.DataFrame({"index": df["index"], "y_proba": proba, "y_pred": y_pred}), feats,
                       pd.DataFrame({"threshold": thr, "decided_by": decided, **extra})], axis=1)
    out = Path(out)
    uniq = sorted({float(t) for t in thr})
    write_text(out / "predictions.csv", preds.to_csv(index=False))
    write_text(out / "clf_report.txt", classification_report(preds, group or features_csv.name, name,
                                                             uniq[0] if len(uniq) == 1 else None, enc_note))
    flagged = preds.loc[preds["y_pred"] == 1, "index"].tolist()
    write_text(out / "compromised.txt", "".join(f"{i}\n" for i in flagged))
    return preds
