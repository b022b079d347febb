"""``blobhelpers svm prep|train|predict`` (registered by :func:`register`); also ``python -m blobhelpers.svm``.

Exit status as the main CLI: 0 success; 2 bad input (the message names the file and the
problem); 1 unexpected internal error. ``prep`` succeeds when at least one visit was prepared
and lists the skipped visits (with the reason) on stderr and in ``prep_errors.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import BlobhelpersError, InputError

__all__ = ["register", "build_parser", "main"]


def cmd_prep(a) -> int:
    from .prep import DEFAULT_PATTERNS, prep

    res = prep(a.path, a.out, patterns=tuple(a.pattern) if a.pattern else DEFAULT_PATTERNS, categories=a.categories or (),
        cat_encoding=a.cat_encoding, missing_gaia=a.missing_gaia, missing_keywords=a.missing_keywords,
        unknown_category=a.unknown_category, mast=a.mast, progress=not a.quiet)
    if len(res.raw) == 0:
        raise InputError(f"{a.path}: no visit could be prepared:\n" +
                         "\n".join(f"  {v}: {r}" for v, r in res.errors))
    print(json.dumps({"out": str(a.out), "visits": int(len(res.raw)), "skipped": len(res.errors)}))
    if res.errors:
        print(f"blobhelpers svm prep: {len(res.errors)} visit(s) skipped:", file=sys.stderr)
        for v, r in res.errors:
            print(f"  {v}: {r}", file=sys.stderr)
    return 0


def cmd_train(a) -> int:
    from ..config import load_params
    from .evaluate import DEFAULT_SVM, train_and_select
    from .features import read_features

    params = load_params(a.params) if a.params else {}
    svm = {**DEFAULT_SVM, **(params.get("svm") or {})}
    seed = a.seed if a.seed is not None else int((params.get("base") or {}).get("seed", 0))
    if a.model:
        unknown = [m for m in a.model if m not in svm["models"]]
        if unknown:
            raise InputError(f"--model {unknown}: not in svm.models {sorted(svm['models'])}")
        svm["models"] = {m: svm["models"][m] for m in a.model}
    enc = a.cat_encoding or svm.get("labelled_cat_encoding", "spacekit")
    df = read_features(a.labelled, enc, require_label=True)
    out = a.out
    r = train_and_select(df, svm, seed, out, progress=not a.quiet)
    s = r["summaries"][r["best"]]
    print(json.dumps({"out": str(out), "best": r["best"], "threshold": r["model"].threshold, "seed": seed,
                      "cv_real_recall": s["nested"]["real_misaligned"],
                      "cv_false_alarm": s["nested"]["false_alarm_real_aligned"]["rate"],
                      "cv_synthetic_recall": s["nested"]["synthetic"]["rate"]}))
    return 0


def cmd_predict(a) -> int:
    from .predict import predict_file

    preds = predict_file(a.features, a.out, a.model, a.images, a.cat_encoding, a.threshold, a.image_model, a.group)
    print(json.dumps({"out": str(a.out), "rows": int(len(preds)), "flagged": int(preds["y_pred"].sum())}))
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``svm`` command (subcommands prep, train, predict) to the main CLI's subparsers."""
    from .features import CAT_SCHEMES

    enc = sorted(CAT_SCHEMES)
    p = subparsers.add_parser("svm", help="HST SVM alignment: prep (JSON+FITS -> features), train, predict")
    sub = p.add_subparsers(dest="svm_command", required=True, metavar="SVM_COMMAND")

    s = sub.add_parser("prep", help="drizzlepac SVM quality-analysis JSON + FITS headers -> raw table and features")
    s.add_argument("path", type=Path, help="folder tree with *_svm_*.json files and total detection images")
    s.add_argument("-o", "--out", type=Path, default=Path("svm_prep"), help="output folder (default ./svm_prep)")
    s.add_argument("--pattern", action="append", default=None,
                   help="JSON file glob (repeatable; default: *_total*_svm_*.json and *_svm_num_sources.json)")
    s.add_argument("--categories", action="append", type=Path, default=None,
                   help="extra targname,category CSV (repeatable; data/svm/target_categories.csv is always read)")
    s.add_argument("--cat-encoding", choices=enc, default="spacekit", help="cat encoding of svm_data.csv")
    s.add_argument("--missing-gaia", choices=("error", "zero"), default="error",
                   help="visit without a Gaia-sources JSON: skip it (default) or count 0 sources (spacekit)")
    s.add_argument("--missing-keywords", choices=("error", "zero"), default="error",
                   help="RMS_RA/RMS_DEC/NMATCHES missing: skip the visit (default) or use 0 (spacekit)")
    s.add_argument("--unknown-category", choices=("error", "unidentified"), default="error")
    s.add_argument("--mast", action="store_true", help="ask MAST for targets not in the tables (network)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_prep)

    s = sub.add_parser("train", help="grouped-CV model selection and training from a labelled feature CSV")
    s.add_argument("labelled", type=Path, help="CSV with the 10 features, index and label")
    s.add_argument("-o", "--out", type=Path, default=Path("build/svm/model"), help="model folder")
    s.add_argument("--params", type=Path, default=None, help="params.yaml to take 'svm' and 'base' from")
    s.add_argument("--model", action="append", default=None, help="only these svm.models (repeatable)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--cat-encoding", choices=enc, default=None,
                   help="cat encoding of the CSV (default: svm.labelled_cat_encoding, spacekit-2021)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("predict", help="predict misalignment: predictions.csv, clf_report.txt, compromised.txt")
    s.add_argument("features", type=Path, help="CSV with spacekit's 10 feature columns and index (label ignored)")
    s.add_argument("--images", type=Path, default=None, help="spacekit PNG folder or .npz (index, images)")
    s.add_argument("--model", type=Path, default=None,
                   help="model folder (default build/svm/model) or spacekit's svm_align.zip / .keras")
    s.add_argument("--image-model", type=Path, default=None,
                   help="ensemble used for image_model_proba (default data/svm/pretrained_spacekit/svm_align.zip)")
    s.add_argument("-o", "--out", type=Path, default=Path("predictions"), help="output folder (default ./predictions)")
    s.add_argument("--cat-encoding", choices=enc, default="spacekit",
                   help="cat encoding of the CSV (spacekit-2021 for the 2021 files)")
    s.add_argument("--threshold", type=float, default=None, help="override the model's operating threshold")
    s.add_argument("--group", default=None, help="name of this data set in clf_report.txt")
    s.set_defaults(func=cmd_predict)
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blobhelpers")
    sub = p.add_subparsers(dest="command", required=True)
    register(sub)
    return p


def main(argv=None) -> int:
    """Standalone entry (``python -m blobhelpers.svm prep ...``), same exit codes as ``blobhelpers``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(["svm", *argv])
    try:
        return int(args.func(args) or 0)
    except BlobhelpersError as exc:
        print(f"blobhelpers svm {args.svm_command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
