"""The blob wing's commands: ``blobhelpers simulate|difference|classify|monitor|review|confirm|prepare``.

:func:`register` adds them to the main parser (:mod:`blobhelpers.cli` parses and dispatches); each
``cmd_*`` takes the parsed arguments and returns the exit status. Exit status: 0 success; 2 bad
input (the message names the file and the problem); 1 unexpected internal error; ``monitor``: 3
when a new blob was found. The model and its threshold come from the model registry
(:mod:`blobhelpers.blob.learn.registry`), the tuned alert thresholds from the monitor's state
(:func:`blobhelpers.blob.detect.monitor.tuning.tuned_thresholds_path`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from blobhelpers.blob.data.datastage import run_data_stage
from blobhelpers.blob.detect.classify import classify_file
from blobhelpers.blob.detect.monitor import (EXIT_NEW_BLOB, EXIT_NOTHING_NEW, MonitorConfig, apply_tuned, confirm,
                                             run_monitor)
from blobhelpers.blob.detect.monitor.tuning import tuned_thresholds_path
from blobhelpers.blob.detect.products import product_stem
from blobhelpers.blob.detect.review import display_available, load_review, review_png, show_in_ginga
from blobhelpers.blob.io.fitsio import expand_frame_paths, write_image
from blobhelpers.blob.learn.cnn import load_model
from blobhelpers.blob.learn.registry import resolve
from blobhelpers.blob.preprocess.difference import difference_from_files
from blobhelpers.blob.preprocess.scaling import scaling_params
from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.sim.campaign import simulate_campaign
from blobhelpers.core.config import load_params
from blobhelpers.core.errors import EXIT_INPUT, EXIT_OK, BlobhelpersError, InputError
from blobhelpers.core.paths import project_root, write_text

__all__ = ["register"]


def cmd_simulate(a) -> int:
    params = load_params(a.params) if a.params else {}
    sim = dict(params.get("simulate", {}))
    sim.pop("source", None)
    if a.n_frames is not None:
        sim["n_frames"] = a.n_frames
    if a.new_blob_rate is not None:
        sim["new_blob_rate"] = a.new_blob_rate
    seed = a.seed if a.seed is not None else int(params.get("base", {}).get("seed", 0))
    camp = simulate_campaign(a.out, CampaignConfig.from_dict(sim), seed, progress=not a.quiet)
    n_new = sum(b.appear_index >= 0 for b in camp.blobs)
    print(json.dumps({"out": str(a.out), "frames": camp.config.n_frames, "existing_blobs": len(camp.blobs) - n_new,
                      "new_blobs": n_new, "seed": seed}))
    return EXIT_OK


def cmd_difference(a) -> int:
    paths = expand_frame_paths(a.frames)
    if not paths:
        raise BlobhelpersError(f"no FITS frames found in {a.frames}")
    diff, cur = difference_from_files(paths, history=a.history, register=not a.no_register, current=a.current)
    sp = scaling_params(diff.data)
    hdr = {**diff.header(), "ZS_LO": (sp.lo, "clip low"), "ZS_HI": (sp.hi, "clip high")}
    write_image(a.out, diff.data, hdr)
    print(json.dumps({"out": str(a.out), "current": str(cur.path), "history": diff.n_history,
                      "shift_x": round(diff.shift[0], 4), "shift_y": round(diff.shift[1], 4),
                      "registered": diff.registered}))
    return EXIT_OK


def cmd_prepare(a) -> int:
    out = run_data_stage(load_params(a.params), progress=not a.quiet)
    print(json.dumps({"source": out["source"], "difference_images": out["n_diffs"],
                      "subframes": {k: len(v) for k, v in out["recipes"].items()},
                      "seconds": {k: round(v, 2) for k, v in out["seconds"].items()}}))
    return EXIT_OK


def cmd_classify(a) -> int:
    """Classify one or many difference images; one JSON document per file (JSON Lines for several)."""
    files = expand_frame_paths(a.diff)
    if not files:
        raise InputError(f"no FITS files found in {[str(d) for d in a.diff]}")
    cfg, fixed = _monitor_config(a)
    model, thr = resolve(a.model, a.threshold)
    cfg.threshold = thr
    if a.threshold is not None:
        fixed.add("threshold")
    tuned = None if a.no_tuned else tuned_thresholds_path()
    apply_tuned(cfg, tuned, model, keep=tuple(fixed))
    net = load_model(model)
    products = None
    if a.save_products or a.products_dir is not None:
        # beside the output: --products-dir, else the folder of --json, else the current folder
        products = a.products_dir if a.products_dir is not None else (a.json.parent if a.json else Path("."))
    docs = []
    for f in files:
        sal = (a.saliency_dir if len(files) == 1 else a.saliency_dir / f.name.split(".")[0]) if a.saliency_dir else None
        try:
            docs.append(classify_file(f, model, cfg.threshold, saliency_dir=sal, model=net, detection=cfg.detection(),
                                      products_dir=products))
        except InputError as exc:
            if len(files) == 1:
                raise
            print(f"blobhelpers classify: warning: skipping {exc}", file=sys.stderr)
            docs.append({"file": str(f), "error": str(exc)})
    text = json.dumps(docs[0], indent=2) if len(files) == 1 else "".join(json.dumps(d) + "\n" for d in docs)
    if a.json:
        write_text(a.json, text.rstrip("\n") + "\n")
    else:
        print(text.rstrip("\n"))
    return EXIT_INPUT if any("error" in d for d in docs) else EXIT_OK


def _monitor_config(a):
    params = {}
    src = a.params if a.params else (project_root() / "params.yaml")
    if Path(src).exists():
        params = load_params(src)
    elif a.params:
        raise BlobhelpersError(f"{a.params}: parameter file not found")
    cfg, fixed = MonitorConfig.resolve(params)  # fixed: set in params.yaml, tuned values do not apply
    cfg.history = a.history if a.history is not None else cfg.history
    if a.min_history is not None:
        cfg.min_history = a.min_history
    cfg.min_history = min(cfg.min_history, cfg.history)
    if a.no_register:
        cfg.register = False
    if a.snr_min is not None:
        cfg.snr_min = a.snr_min
        fixed.add("snr_min")
    if a.threshold is not None:
        fixed.add("threshold")
    return cfg, fixed


def cmd_monitor(a) -> int:
    logging.basicConfig(level=logging.WARNING, format="blobhelpers monitor: warning: %(message)s")
    cfg, fixed = _monitor_config(a)
    model, thr = resolve(a.model, a.threshold)
    if "threshold" not in fixed or a.threshold is not None:
        cfg.threshold = thr  # the flag, else best.json's validation-chosen threshold (or 0.5)
    if a.tuned is not None and not a.tuned.exists():
        raise InputError(f"{a.tuned}: tuned-thresholds file not found")
    tuned = None if a.no_tuned else (a.tuned or tuned_thresholds_path())
    applied = apply_tuned(cfg, tuned, model, keep=tuple(fixed))
    if applied and not a.quiet:
        print(f"blobhelpers monitor: thresholds tuned on the development campaign ({tuned}): "
              + ", ".join(applied), file=sys.stderr)
    recs = run_monitor(a.frames, model, a.out, cfg, a.known, all_frames=a.all, progress=not a.quiet,
                       html=not a.no_html, save_products=a.save_products)
    for r in recs:
        print(json.dumps({"frame": r["frame"], "date_obs": r["date_obs"], "verdict": r["verdict"],
                          "alerts": [{k: c[k] for k in ("x", "y", "radius", "depth", "probability")}
                                     for c in r["candidates"] if c["new"]],
                          **({"products": r["products"]} if r.get("products") else {})}))
    return EXIT_NEW_BLOB if any(r["new_blob"] for r in recs) else EXIT_NOTHING_NEW


def cmd_review(a) -> int:
    """Show a saved verdict (difference image + DS9 regions) in ginga, or write it as a PNG."""
    if a.size < 64:
        raise InputError(f"review: --size {a.size} is too small (at least 64 px)")
    view = load_review(a.source, a.frame)
    for note in view.notes:
        print(f"blobhelpers review: note: {note}", file=sys.stderr)
    window = display_available() and not a.no_window
    if a.out is not None or not window:

        out = a.out if a.out is not None else view.fits_path.parent / f"{product_stem(view.fits_path)}_review.png"
        try:
            review_png(view, out, size=a.size)
        except OSError as exc:
            raise BlobhelpersError(f"{out}: cannot write the PNG ({exc})") from exc
        print(str(out))
    if window:  # pragma: no cover - needs a display
        show_in_ginga(view)
    return EXIT_OK


def cmd_confirm(a) -> int:
    rows = confirm(a.catalog, a.log, a.frame, a.candidate, a.x, a.y, a.radius, a.depth, a.note or "")
    print(json.dumps({"catalog": str(a.catalog), "added": rows}))
    return EXIT_OK


def register(sub) -> None:
    """Add the blob commands to *sub* (the main parser's sub-parsers)."""
    s = sub.add_parser("simulate", help="simulate a CSM-monitor blob campaign (FITS frames + truth catalog)")
    s.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    s.add_argument("--params", type=Path, default=None, help="params.yaml to take the 'simulate' section from")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--n-frames", type=int, default=None)
    s.add_argument("--new-blob-rate", type=float, default=None, help="mean new blobs per frame")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("difference", help="blob difference image: median of previous N frames minus the newest")
    s.add_argument("frames", nargs="+", help="FITS files, folders or globs (ordered by DATE-OBS)")
    s.add_argument("-o", "--out", type=Path, required=True, help="output FITS file")
    s.add_argument("--history", type=int, default=30, help="frames in the median stack (default 30)")
    s.add_argument("--current", default=None, help="frame to difference (default: the newest)")
    s.add_argument("--no-register", action="store_true", help="skip the sub-pixel dip correction")
    s.set_defaults(func=cmd_difference)

    s = sub.add_parser("classify", help="classify blob difference images (candidates, CNN, 16 tiles), JSON out",
                       description="One JSON document for one file; JSON Lines (one per file) for several. "
                                   "Imports and the model load are paid once.")
    s.add_argument("diff", nargs="+", help="difference image FITS files, folders or globs (blobs positive)")
    s.add_argument("--model", type=Path, default=None, help="a .keras model (default: models/best.keras)")
    s.add_argument("--threshold", type=float, default=None,
                   help="P(blob) threshold (default: the validation-chosen one of models/best.json, else 0.5)")
    s.add_argument("--json", type=Path, default=None, help="write the JSON here instead of stdout")
    s.add_argument("--saliency-dir", type=Path, default=None, help="write one saliency PNG per alert")
    s.add_argument("--params", type=Path, default=None, help="params.yaml for the detection settings (monitor section)")
    s.add_argument("--no-tuned", action="store_true", help="ignore the thresholds tuned on the development campaign")
    s.add_argument("--save-products", action="store_true",
                   help="also write <stem>_diff.fits (the image classified, with its provenance) and <stem>_regions.reg "
                        "(DS9 regions of the verdict) into --products-dir")
    s.add_argument("--products-dir", type=Path, default=None,
                   help="folder for --save-products (default: the folder of --json, else the current folder; "
                        "implies --save-products)")
    s.set_defaults(func=cmd_classify, history=None, min_history=None, no_register=False, snr_min=None)

    s = sub.add_parser("monitor", help="daily new-blob monitor: newest frame vs the median of its history",
                       description="Exit status: 0 nothing new; 3 new blob(s) found; 2 bad input; 1 internal error.")
    s.add_argument("frames", nargs="+", help="FITS frames, folders or globs (ordered by DATE-OBS, not by name)")
    s.add_argument("--model", type=Path, default=None, help="a .keras model (default: models/best.keras)")
    s.add_argument("--threshold", type=float, default=None,
                   help="CNN P(blob) threshold (default: the validation-chosen one of models/best.json)")
    s.add_argument("--history", type=int, default=None, help="frames in the median stack (default: params, 30)")
    s.add_argument("--min-history", type=int, default=None, help="fewest usable history frames for a verdict")
    s.add_argument("--known", type=Path, default=None, help="known-blob catalog CSV (x, y, radius columns)")
    s.add_argument("-o", "--out", type=Path, default=Path("monitor_out"),
                   help="output folder: monitor_log.jsonl, saliency/, summary/, products/ (default ./monitor_out)")
    s.add_argument("--all", action="store_true", help="process every frame with enough history, not only the newest")
    s.add_argument("--snr-min", type=float, default=None, help="matched-filter detection threshold (sigma)")
    s.add_argument("--tuned", type=Path, default=None,
                   help="alert thresholds tuned on a development campaign (default: build/monitor/thresholds.json "
                        "when it exists and was tuned for this model)")
    s.add_argument("--no-tuned", action="store_true", help="ignore tuned thresholds (params.yaml / defaults only)")
    s.add_argument("--no-register", action="store_true", help="skip the sub-pixel dip correction")
    s.add_argument("--no-html", action="store_true", help="no daily HTML summary")
    s.add_argument("--save-products", action=argparse.BooleanOptionalAction, default=True,
                   help="write each frame's difference image (products/<frame>_diff.fits) and DS9 region file "
                        "(products/<frame>_regions.reg) into --out (default: on; --no-save-products to skip)")
    s.add_argument("--params", type=Path, default=None, help="params.yaml for the monitor section (default: project's)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_monitor)

    s = sub.add_parser("review", help="look at a saved verdict: difference image with alerts circled (ginga window or PNG)",
                       description="LOG_OR_FITS: a monitor_log.jsonl (the record of --frame; default the latest "
                                   "alerting record, else the latest) or a saved *_diff.fits (its *_regions.reg is "
                                   "found beside it). With a display (DISPLAY set, a Qt binding installed) the image "
                                   "opens in a ginga window; otherwise, or with --out, the same view is written as a "
                                   "PNG and its path printed.")
    s.add_argument("source", type=Path, metavar="LOG_OR_FITS")
    s.add_argument("--frame", default=None, help="frame file name (or stem) in the log")
    s.add_argument("--out", type=Path, default=None,
                   help="PNG to write (default without a display: <stem>_review.png beside the FITS)")
    s.add_argument("--size", type=int, default=1024, help="PNG size in pixels (default 1024)")
    s.add_argument("--no-window", action="store_true", help="never open a window, only write the PNG")
    s.set_defaults(func=cmd_review)

    s = sub.add_parser("confirm", help="add confirmed blob(s) to a known-blob catalog (so they are no longer new)")
    s.add_argument("catalog", type=Path, help="known-blob catalog CSV (created if absent)")
    s.add_argument("--log", type=Path, default=None, help="a monitor_log.jsonl")
    s.add_argument("--frame", default=None, help="frame file name in the log whose alerts are confirmed")
    s.add_argument("--candidate", type=int, action="append", default=None,
                   help="candidate index in that frame's entry (repeatable; default: all its alerts)")
    s.add_argument("--x", type=float, default=None)
    s.add_argument("--y", type=float, default=None)
    s.add_argument("--radius", type=float, default=None)
    s.add_argument("--depth", type=float, default=None)
    s.add_argument("--note", default=None)
    s.set_defaults(func=cmd_confirm)

    s = sub.add_parser("prepare", help="[pipeline] run the data stage (campaign, differences, datasets) without the report")
    s.add_argument("--params", type=Path, default=None)
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_prepare)
