"""Benchmark: the costly steps of SVM stages 11, 13 and 14 with N worker processes, wall-clock seconds,
and a digest of everything they produce (to check that the worker count changes nothing).

* stage 11: ``train_and_select`` (nested CV of every ``svm.models`` candidate, refit) and the
  permutation importance of the deployed kind;
* stage 13: ``simulate``, ``corrupt`` (``svm_sim``), ``prep`` and ``render`` into a temporary folder;
* stage 14: ``compare_models`` (tabular, cnn2d, stacked and spacekit's ensemble on the same folds)
  and the final stacked fit, on the stage-13 products (``--sim``; default: the temporary stage-13
  output of this run, else ``build/svm/sim``).

Parameters come from ``params.yaml`` as in ``dvc repro``; nothing is written into the repository.
Run it twice with different ``--n-jobs`` and compare the ``digest`` lines: they must be equal.
The machine is shared: compare medians of several runs, and the CPU load printed with each.

    python benchmarks/bench_svm_stages.py [--stages 11 13 14] [--n-jobs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _digest_arrays(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=float)).tobytes())
    return h.hexdigest()[:16]


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def stage11(params: dict, n_jobs, tmp: Path) -> dict:
    from blobhelpers.svm.evaluate import SELECTION, permutation_importance, train_and_select
    from blobhelpers.svm.features import read_features

    svm, seed = params["svm"], int(params["base"]["seed"])
    df = read_features(svm["labelled"], svm["labelled_cat_encoding"], require_label=True)
    t0 = time.perf_counter()
    res = train_and_select(df, svm, seed, out=tmp / "model", progress=False, n_jobs=n_jobs)
    t1 = time.perf_counter()
    imp = permutation_importance(df, res["run"].result(res["best"], 0), seed, int(svm.get("importance_repeats", 3)))
    t2 = time.perf_counter()
    run = res["run"]
    names = [*run.names, SELECTION]
    return {"train_and_select_s": t1 - t0, "importance_s": t2 - t1, "best": res["best"],
            "digest": _digest_arrays(*(run.proba[n] for n in names), *(run.threshold[n] for n in names),
                                     imp[["auc_drop_real", "auc_drop_all"]]) + " " + _digest_folder(tmp / "model")}


def stage13(params: dict, n_jobs, tmp: Path) -> dict:
    from blobhelpers.svm.corrupt import corrupt
    from blobhelpers.svm.prep import prep
    from blobhelpers.svm.render import render
    from blobhelpers.svm.sections import SvmSimSection
    from blobhelpers.svm.simulate import SimConfig, simulate

    p, seed = SvmSimSection.from_dict(params["svm_sim"]), int(params["base"]["seed"])
    cfg = SimConfig(size=p.size, threshold_px=p.threshold_px, min_matches=p.min_matches)
    out, times = tmp / "sim", {}
    t = time.perf_counter()
    rows = simulate(out / "visits", n_visits=p.n_visits, seed=seed, detectors=p.detectors, size=p.size, config=cfg,
                    n_jobs=n_jobs)
    times["simulate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    cor = corrupt([r[1] for r in rows], out / "corrupted", modes=p.modes, expos=p.expos, shift_range=(0.0, p.shift_max),
                  rot_max=p.rot_max, seed=seed, config=cfg, write_exposures=False, n_jobs=n_jobs)
    times["corrupt_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res = prep(out, out / "prep", missing_gaia="zero", progress=False)
    times["prep_s"] = time.perf_counter() - t
    labels = {i: lab for i, _, lab in rows} | {r["index"]: r["label"] for r in cor}
    feat = res.features.assign(label=lambda d: d["index"].map(labels))
    feat.to_csv(out / "sim_labelled.csv", index=False)
    t = time.perf_counter()
    render(out, out / "png", n_jobs=n_jobs)
    times["render_s"] = time.perf_counter() - t
    return {**times, "digest": _digest_folder(out)}


def stage14(params: dict, n_jobs, sim: Path) -> dict:
    import pandas as pd

    from blobhelpers.svm.ensemble import compare_models, fit_image_model
    from blobhelpers.svm.images import load_images
    from blobhelpers.svm.sections import SvmImagesSection

    p, seed = SvmImagesSection.from_dict(params["svm_images"]), int(params["base"]["seed"])
    tab_params = {k: v for k, v in params["svm"]["models"].get(p.tabular, {}).items() if k != "kind"}
    table = pd.read_csv(sim / "sim_labelled.csv")
    found, imgs = load_images(sim / "png", table["index"])
    table = table.set_index("index").loc[found].reset_index()
    y = table["label"].to_numpy(int)
    t0 = time.perf_counter()
    cmp = compare_models(table, imgs, seed=seed, n_jobs=n_jobs, **p.comparison(tab_params))
    t1 = time.perf_counter()
    final = fit_image_model("stacked", table, imgs, y, seed, p.epochs, n_jobs=n_jobs,
                            params={"tabular": p.tabular, "tabular_params": tab_params, "inner_splits": p.inner_splits})
    t2 = time.perf_counter()
    return {"compare_s": t1 - t0, "final_fit_s": t2 - t1,
            "digest": _digest_arrays(*(m["proba"] for m in cmp["models"].values()), final.predict_proba(table, imgs),
                                     final.stack["coef"])}


def main() -> None:
    import yaml

    from blobhelpers.core.paths import project_root
    from blobhelpers.core.parallel import cpu_count

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", nargs="+", default=["11", "13", "14"], choices=["11", "13", "14"])
    ap.add_argument("--n-jobs", type=int, default=None,
                    help="worker processes (default: BLOBHELPERS_WORKERS, else the CPU count, at most 2)")
    ap.add_argument("--sim", type=Path, default=None, help="stage-13 products for stage 14 (default: see above)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args()
    root = project_root()
    os.chdir(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    out = {"n_jobs": args.n_jobs, "cpus": cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench_svm_") as tmp:
        tmp = Path(tmp)
        for st in args.stages:
            load = os.getloadavg()[0]
            t = time.perf_counter()
            if st == "11":
                r = stage11(params, args.n_jobs, tmp)
            elif st == "13":
                r = stage13(params, args.n_jobs, tmp)
            else:
                sim = args.sim or (tmp / "sim" if (tmp / "sim" / "png").is_dir() else root / "build" / "svm" / "sim")
                r = stage14(params, args.n_jobs, sim)
            out[f"stage{st}"] = {**r, "total_s": time.perf_counter() - t, "load_before": load}
            print(f"stage {st}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in out[f"stage{st}"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
