"""Experiment: can the ISR 2021-08 model leave the ln 2 loss plateau at the default data scale?

Trains `isr2021` (the report's recipe: batch 100, Adam for 5 epochs, then SGD) on the stage-01
training subframes with a few variants and prints, for each, the loss per epoch, the validation
AUC and the fraction of dead ReLU units (never positive on 200 validation subframes):

* ``default``      -- params.yaml's isr2021 settings;
* ``curriculum``   -- injected blobs 4x deeper in epoch 0, decaying linearly to 1x at epoch 8;
* ``adam1e-4``     -- Adam at 1e-4 instead of 1e-3 (smaller first steps);
* ``curric+1e-4``  -- both;
* ``easy-isr2021`` / ``easy-blobnet`` -- a control: the same backgrounds (stage-01 difference
  images) but an EASY set, one 8-25 % blob per positive subframe (built in a temporary folder),
  to tell "the data are too faint" from "the architecture needs more data".

Needs the stage-01 outputs (``dvc repro data_prep``). About 2 minutes per variant on 2 cores.

    python benchmarks/isr_plateau.py [--epochs 15] [--variants default curriculum] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "default": {},
    "curriculum": {"curriculum_boost": 4.0, "curriculum_epochs": 8},
    "adam1e-4": {"learning_rate": 1e-4},
    "curric+1e-4": {"curriculum_boost": 4.0, "curriculum_epochs": 8, "learning_rate": 1e-4},
    "easy-isr2021": {},
    "easy-blobnet": {},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    import yaml
    from sklearn.metrics import roc_auc_score

    from blobhelpers.core.config import ProjectPaths
    from blobhelpers.blob.learn.inference import predict_logits
    from blobhelpers.blob.learn.cnn import probabilities
    from blobhelpers.blob.data.datastage import load_dataset
    from blobhelpers.blob.learn.training import relu_activity, train_model
    from blobhelpers.blob.sections import TrainConfig

    paths = ProjectPaths.default()
    params = yaml.safe_load((paths.root / "params.yaml").read_text())
    cache = {}
    noise = params["dataset"].get("noise_sigma", 0.75)
    tr = load_dataset("train", paths.datasets, paths.diffs, paths.cutouts, noise, cache)
    va = load_dataset("val", paths.datasets, paths.diffs, paths.cutouts, noise, cache)
    base = dict(params["train"]["models"]["isr2021"], epochs=args.epochs)
    easy = None
    rows = []
    for name in args.variants:
        if name.startswith("easy-"):
            if easy is None:
                easy = _easy_sets(paths, params, tmp=Path(tempfile.mkdtemp(prefix="isr_plateau_")))
            t_ds, v_ds = easy
            arch = name.split("-", 1)[1]
            cfg = TrainConfig.from_dict({**params["train"]["models"][arch], "epochs": args.epochs})
        else:
            t_ds, v_ds = tr, va
            cfg = TrainConfig.from_dict({**base, **VARIANTS[name]})
        Xv, yv = v_ds.arrays()
        t = time.perf_counter()
        model, hist = train_model(cfg, t_ds, v_ds, seed=int(params["base"]["seed"]), verbose=0)
        p = probabilities(predict_logits(model, Xv))
        act = relu_activity(model, Xv[:200])
        row = {"variant": name, "val_auc": round(float(roc_auc_score(yv, p)), 4),
               **{f"dead_{k}": round(v["dead"], 3) for k, v in act.items()},
               "loss_first": round(hist["loss"][0], 3), "loss_last": round(hist["loss"][-1], 3),
               "seconds": round(time.perf_counter() - t), "loss": [round(v, 4) for v in hist["loss"]]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{len(tr)} training subframes, {args.epochs} epochs, seed {params['base']['seed']} "
          "(isr2021 unless the variant names another model)")
    print(f"{'variant':<13} {'val AUC':>8} {'dead conv1':>10} {'dead conv2':>10} {'dead fc1':>9} {'loss 1st':>9} {'loss last':>9}")
    for r in rows:
        print(f"{r['variant']:<13} {r['val_auc']:>8.3f} {r.get('dead_conv1', float('nan')):>10.2f} "
              f"{r.get('dead_conv2', float('nan')):>10.2f} {r.get('dead_fc1', float('nan')):>9.2f} "
              f"{r['loss_first']:>9.3f} {r['loss_last']:>9.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def _easy_sets(paths, params, tmp: Path):
    """Train/val recipes on the stage-01 difference images with one strong (8-25 %) blob per positive."""
    from blobhelpers.blob.sections import InjectionConfig
    from blobhelpers.blob.data.datastage import build_datasets, load_dataset

    ds = params["dataset"]
    build_datasets(paths.diffs, paths.cutouts, tmp, seed=int(params["base"]["seed"]) + 1, n_train=int(ds["n_train"]),
                   n_val=int(ds["n_val"]), n_test=10, injection=InjectionConfig(depth_min=0.08, depth_max=0.25,
                                                                               max_blobs=1),
                   campaign_dir=paths.campaign, history=int(params["difference"]["history"]),
                   border_rule=params["difference"].get("border_rule", "symmetric"))
    cache = {}
    noise = ds.get("noise_sigma", 0.75)
    return (load_dataset("train", tmp, paths.diffs, paths.cutouts, noise, cache),
            load_dataset("val", tmp, paths.diffs, paths.cutouts, noise, cache))


if __name__ == "__main__":
    main()
