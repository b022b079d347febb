"""Predictions on a feature table: ``predictions.csv``, ``clf_report.txt``, ``compromised.txt``.

The outputs mean what spacekit's do: ``y_proba`` is P(misaligned), ``y_pred`` 1 for a suspicious
(compromised) alignment, ``compromised.txt`` lists the flagged ``index`` values, one per line,
and ``clf_report.txt`` summarises the run (mean probability, counts, flagged per detector).

Deciding model: a blobhelpers tabular model folder (default ``build/svm/model``, written by
``dvc repro`` or ``blobhelpers svm train``) with its operating threshold; a blobhelpers image
model folder (``ensemble.json``, e.g. ``build/svm/image_model`` from stage 14): ``stacked``
combines the tabular and image probabilities for the visits that have images and falls back to
its tabular part for the others; or spacekit's released ensemble (``--model svm_align.zip``) for
the visits that have images (threshold 0.5, as spacekit), the tabular model deciding the others. With a tabular model and ``--images``, the
released ensemble's probability is added as ``image_model_proba`` for the visits with images.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import InputError
from ..core.paths import project_root, write_text
from .features import CANONICAL, DETECTORS, FEATURES, read_features, recode_cat
from .images import is_image_model, load_images, load_spacekit_model, spacekit_predict
from .models import load_model

__all__ = ["default_model_path", "default_image_model_path", "predict_file", "classification_report"]


def default_model_path() -> Path:
    return project_root() / "build" / "svm" / "model"


def default_image_model_path() -> Path:
    return project_root() / "data" / "svm" / "pretrained_spacekit" / "svm_align.zip"


def classification_report(preds: pd.DataFrame, group: str = "SVM-DATA", model: str = "", threshold=None) -> str:
    """spacekit-style text report of a predictions table (``y_proba``, ``y_pred``, ``det``)."""
    now = dt.datetime.now().isoformat(timespec="seconds")
    date, time = now.split("T")
    sep = "---" * 7
    p = preds["y_pred"].astype(int)
    lines = ["CLASSIFICATION REPORT", f"date:  {date}", f"time:  {time}", f"data:  {group}"]
    if model:
        lines.append(f"model: {model}" + (f" (threshold {threshold:.4g})" if threshold is not None else ""))
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


def predict_file(features_csv: str | Path, out: str | Path, model: str | Path | None = None,
                 images: str | Path | None = None, cat_encoding: str = CANONICAL, threshold: float | None = None,
                 image_model: str | Path | None = None, group: str | None = None) -> pd.DataFrame:
    """Predict every row of *features_csv*; write the three output files into *out*; return the table."""
    features_csv = Path(features_csv)
    df = read_features(features_csv, cat_encoding)
    if "label" in df:
        df = df.drop(columns="label")  # ignored, as documented
    model = Path(model) if model else default_model_path()
    n = len(df)
    proba, decided = np.full(n, np.nan), np.array([""] * n, dtype=object)
    thr = np.full(n, np.nan)
    extra = {}
    if (model / "ensemble.json").is_file():  # this project's image model (stage 14)
        from .ensemble import load_image_model

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
        if im.kind != "stacked" and not has.all():
            raise InputError(f"{model}: the {im.kind} image model needs images for every visit "
                             f"({int((~has).sum())} without)")
        proba = im.predict_proba(df, arr, has_image=has if arr is not None else None)
        thr[:] = im.threshold if threshold is None else threshold
        decided[:] = np.where(has, f"{im.kind}:image+tabular" if im.kind == "stacked" else f"{im.kind}:image",
                              f"{im.kind}:tabular")
        name = f"{model.name} ({im.kind})"
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
            tab_path = default_model_path()
            try:
                tab = load_model(tab_path)
            except InputError as exc:
                missing = df.loc[rest, "index"].tolist()[:5]
                raise InputError(f"{images}: no images for {int(rest.sum())} visit(s) (e.g. {missing}) and no "
                                 f"tabular model to decide them ({exc})") from exc
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
    y_pred = (proba > thr).astype(int)
    feats = df[list(FEATURES)].copy()
    feats["cat"] = recode_cat(feats["cat"].astype(int), CANONICAL, cat_encoding)  # as given in the input
    for c in ("numexp", "nmatches", "point", "segment", "det", "wcs", "cat"):
        feats[c] = feats[c].astype(np.int64)
    preds = pd.concat([pd.DataFrame({"index": df["index"], "y_proba": proba, "y_pred": y_pred}), feats,
                       pd.DataFrame({"threshold": thr, "decided_by": decided, **extra})], axis=1)
    out = Path(out)
    uniq = sorted({float(t) for t in thr})
    write_text(out / "predictions.csv", preds.to_csv(index=False))
    write_text(out / "clf_report.txt", classification_report(preds, group or features_csv.name, name,
                                                             uniq[0] if len(uniq) == 1 else None))
    flagged = preds.loc[preds["y_pred"] == 1, "index"].tolist()
    write_text(out / "compromised.txt", "".join(f"{i}\n" for i in flagged))
    return preds
