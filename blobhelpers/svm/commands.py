"""``blobhelpers svm prep|train|predict|simulate|corrupt|render`` (registered by :func:`register`).

Also ``python -m blobhelpers.svm``.

Exit status as the main CLI: 0 success; 2 bad input (the message names the file and the
problem); 1 unexpected internal error. ``prep`` succeeds when at least one visit was prepared
and lists the skipped visits (with the reason) on stderr and in ``prep_errors.csv``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from blobhelpers.core.config import load_params
from blobhelpers.core.errors import EXIT_OK, InputError, run_guarded
from blobhelpers.core.paths import write_text
from blobhelpers.svm.corrupt import corrupt
from blobhelpers.svm.evaluate import DEFAULT_SVM, train_and_select
from blobhelpers.svm.features import CAT_SCHEMES, read_features
from blobhelpers.svm.predict import predict_file
from blobhelpers.svm.prep import DEFAULT_PATTERNS, prep
from blobhelpers.svm.render import render
from blobhelpers.svm.sections import SvmSimSection
from blobhelpers.svm.simulate import DETECTOR_SPECS, FIELD_KINDS, SimConfig, simulate

__all__ = ["register", "build_parser", "main"]


def cmd_prep(a) -> int:
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
    return EXIT_OK


def cmd_train(a) -> int:
    params = load_params(a.params) if a.params else {}
    svm = {**DEFAULT_SVM, **(params.get("svm") or {})}
    seed = a.seed if a.seed is not None else int((params.get("base") or {}).get("seed", 0))
    if a.model:
        unknown = [m for m in a.model if m not in svm["models"]]
        if unknown:
            raise InputError(f"--model {unknown}: not in svm.models {sorted(svm['models'])}")
        svm["models"] = {m: svm["models"][m] for m in a.model}
    enc = a.cat_encoding or svm.get("labelled_cat_encoding", "spacekit")
    df = read_features(a.labelled, enc, require_label=True, force_cat_encoding=a.force_cat_encoding)
    out = a.out
    r = train_and_select(df, svm, seed, out, progress=not a.quiet)
    oos = r["model"].info["out_of_sample"]
    print(json.dumps({"out": str(out), "best": r["best"], "threshold": r["model"].threshold, "seed": seed,
                      "scores": r["scores"], "nested_real_recall": oos["real_recall"],
                      "nested_false_alarm": oos["false_alarm"]["rate"],
                      "nested_synthetic_recall": oos["synthetic_recall"]["rate"],
                      "nested_roc_auc_real": oos["roc_auc_real"]}))
    return EXIT_OK


def cmd_predict(a) -> int:
    preds = predict_file(a.features, a.out, a.model, a.images, a.cat_encoding, a.threshold, a.image_model, a.group,
                         tabular_model=a.tabular_model, force_cat_encoding=a.force_cat_encoding)
    print(json.dumps({"out": str(a.out), "rows": int(len(preds)), "flagged": int(preds["y_pred"].sum())}))
    return EXIT_OK


#: The command line's own defaults (without ``--params``); ``None`` = the command's built-in behaviour.
_SIM_FLAG_DEFAULTS = {"n_visits": 5, "size": 256, "detectors": ["ir", "uvis", "wfc", "hrc", "sbc"], "min_matches": 1,
                      "threshold_px": None, "shift_max": 0.8, "rot_max": 0.02, "mode": None, "expo": None}
_SIM_KEYS = {"n_visits": "n_visits", "size": "size", "detectors": "detectors", "min_matches": "min_matches",
             "threshold_px": "threshold_px", "shift_max": "shift_max", "rot_max": "rot_max", "mode": "modes",
             "expo": "expos"}


def _sim_defaults(a, command: str) -> None:
    """Fill the flags not given: from ``--params``' svm_sim section (typed, typos rejected), else the CLI defaults."""
    sec = None
    if a.params:
        sec = SvmSimSection.from_dict(load_params(a.params).get("svm_sim"))
    for flag, key in _SIM_KEYS.items():
        if not hasattr(a, flag) or getattr(a, flag) is not None:
            continue
        default = getattr(sec, key) if sec is not None else _SIM_FLAG_DEFAULTS[flag]
        if command == "simulate" and flag == "threshold_px" and default is None:
            default = 1.0
        setattr(a, flag, default)


def cmd_simulate(a) -> int:
    _sim_defaults(a, "simulate")
    cfg = SimConfig(size=a.size, min_matches=a.min_matches, threshold_px=a.threshold_px)
    rows = simulate(a.out, n_visits=a.n_visits, seed=a.seed, detectors=a.detectors, size=a.size, config=cfg,
                    field_kinds=a.field_kind, progress=not a.quiet)
    print(json.dumps({"out": str(a.out), "visits": len(rows), "misaligned": sum(r[2] for r in rows)}))
    return EXIT_OK


def cmd_corrupt(a) -> int:
    import pandas as pd

    _sim_defaults(a, "corrupt")
    if a.shift_min > a.shift_max:
        raise InputError(f"--shift-min {a.shift_min} > --shift-max {a.shift_max}")
    cfg = None if a.threshold_px is None else SimConfig(threshold_px=a.threshold_px)
    rows = corrupt(a.visits, a.out, modes=a.mode or ["stat"], expos=a.expo or ["all"], filt=a.filter,
                   shift_range=(a.shift_min, a.shift_max), rot_max=a.rot_max, seed=a.seed,
                   shift=a.shift, config=cfg, write_exposures=not a.no_exposures)
    table = pd.DataFrame(rows)

    write_text(Path(a.out) / "corruptions.csv", table.to_csv(index=False))
    print(json.dumps({"out": str(a.out), "corrupted": len(rows), "labelled_misaligned": int(table["label"].sum())}))
    return EXIT_OK


def cmd_render(a) -> int:
    done = render(a.path, a.out, dpi=a.dpi)
    print(json.dumps({"out": str(a.out), "rendered": len(done)}))
    return EXIT_OK


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``svm`` command (subcommands prep, train, predict, simulate, corrupt, render) to the main CLI."""
    enc = sorted(CAT_SCHEMES)
    p = subparsers.add_parser("svm", help="HST SVM alignment: prep (JSON+FITS -> features), train, predict, "
                                          "simulate, corrupt, render")
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
    s.add_argument("--cat-encoding", choices=[*enc, "auto"], default=None,
                   help="cat encoding of the CSV (default: svm.labelled_cat_encoding, spacekit-2021; checked "
                        "against the file)")
    s.add_argument("--force-cat-encoding", action="store_true",
                   help="use --cat-encoding even where the file's values suggest the other table")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("predict", help="predict misalignment: predictions.csv, clf_report.txt, compromised.txt")
    s.add_argument("features", type=Path, help="CSV with spacekit's 10 feature columns and index (label ignored)")
    s.add_argument("--images", type=Path, default=None, help="spacekit PNG folder or .npz (index, images)")
    s.add_argument("--model", type=Path, default=None,
                   help="model folder (default build/svm/model; an image-model folder such as build/svm/image_model) "
                        "or spacekit's svm_align.zip / .keras")
    s.add_argument("--image-model", type=Path, default=None,
                   help="ensemble used for image_model_proba (default data/svm/pretrained_spacekit/svm_align.zip)")
    s.add_argument("-o", "--out", type=Path, default=Path("predictions"), help="output folder (default ./predictions)")
    s.add_argument("--cat-encoding", choices=["auto", *enc], default="auto",
                   help="cat encoding of the CSV: auto (default) detects it from the file and refuses a file it "
                        "cannot decide; spacekit (current spacekit, `svm prep`) or spacekit-2021 (the 2021 files) "
                        "are checked against the file")
    s.add_argument("--force-cat-encoding", action="store_true",
                   help="use --cat-encoding even where the file's values suggest the other table (noted in "
                        "clf_report.txt)")
    s.add_argument("--tabular-model", type=Path, default=None,
                   help="tabular model deciding the visits without images when --model is an image model "
                        "(default build/svm/model)")
    s.add_argument("--threshold", type=float, default=None, help="override the model's operating threshold")
    s.add_argument("--group", default=None, help="name of this data set in clf_report.txt")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("simulate", help="simulated SVM visits (exposures, drizzled total product, QA JSON, truth)")
    s.add_argument("out", type=Path, help="output folder (one sub-folder per visit)")
    s.add_argument("--params", type=Path, default=None,
                   help="take the defaults below from this params.yaml's svm_sim section (flags still win)")
    s.add_argument("--n-visits", type=int, default=None, help="number of visits (default 5; detectors in turn)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--detectors", nargs="+", choices=sorted(DETECTOR_SPECS),
                   default=None, help="detectors in turn (default: all five)")
    s.add_argument("--size", type=int, default=None, help="simulated chip width in pixels (default 256; real: 1014-4096)")
    s.add_argument("--field-kind", nargs="+", choices=sorted(FIELD_KINDS), default=None,
                   help="field kinds in turn (default: drawn at random)")
    s.add_argument("--min-matches", type=int, default=None, help="fewest Gaia matches of an accepted fit (default 1)")
    s.add_argument("--threshold-px", type=float, default=None, help="label threshold, native pixels (default 1)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("corrupt", help="misalign exposures of simulated visits, re-process, measure and label")
    s.add_argument("visits", type=Path, nargs="+", help="simulated visit folders (with truth.json)")
    s.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    s.add_argument("--params", type=Path, default=None,
                   help="take the defaults below from this params.yaml's svm_sim section (flags still win)")
    s.add_argument("--mode", choices=("stat", "stoc"), action="append", default=None,
                   help="stat: one shift for all chosen exposures; stoc: per exposure and axis (repeatable)")
    s.add_argument("--expo", choices=("all", "sub"), action="append", default=None,
                   help="all exposures of the filter or a random subset (repeatable)")
    s.add_argument("--filter", default=None, help="filter to corrupt (default: drawn per visit)")
    s.add_argument("--shift-min", type=float, default=0.0, help="smallest |shift| per axis, arcsec (default 0)")
    s.add_argument("--shift-max", type=float, default=None, help="largest |shift| per axis, arcsec (default 0.8)")
    s.add_argument("--rot-max", type=float, default=None, help="largest |rotation|, degrees (default 0.02)")
    s.add_argument("--shift", type=float, nargs=2, default=None, metavar=("EAST", "NORTH"),
                   help="apply exactly this shift (arcsec) instead of drawing one")
    s.add_argument("--threshold-px", type=float, default=None, help="label threshold, native pixels (default 1)")
    s.add_argument("--no-exposures", action="store_true",
                   help="do not copy the exposure files into the corrupted visits (saves space)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_corrupt)

    s = sub.add_parser("render", help="spacekit's 3 PNG renderings of total detection products")
    s.add_argument("path", type=Path, help="a *_total_*_drz.fits / _drc.fits file or a folder tree of them")
    s.add_argument("-o", "--out", type=Path, required=True,
                   help="output folder: OUT/<index>/<index>{,_source,_gaia}.png")
    s.add_argument("--dpi", type=int, default=64, help="PNG size = 4 x dpi pixels (default 64 -> 256 px)")
    s.set_defaults(func=cmd_render)
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
    return run_guarded(args.func, args, f"blobhelpers svm {args.svm_command}")
