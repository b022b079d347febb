"""Score blobnet models from the hyperparameter search on the independent cross-simulator's tiles.

    python scripts/exp_crosssim.py --model today=models/blobnet.keras \
        --model grid1-8=build/search_models/grid1-8/blobnet.keras --out experiments/blobnet_search_crosssim.json

The search chose on the validation set of the project's own simulator; this measures the chosen
setting and today's on data neither was built or chosen on: the grid tiles of the cross-simulator's
difference images (``build/crosssim/diff``, made by stage crosssim), labelled as stage isr_recipe
labels them (tiles holding only a blob below S/N 3 are left out), with the model's own input
representation. The result (ROC AUC with the tile counts) is written as JSON for stage 07 to show;
today's model scored here must give stage 06's ``project_recipe_blobnet_xsim_auc``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from blobhelpers.blob.evaluate.isreval import binary_summary, crosssim_tiles, to_input
from blobhelpers.blob.io.fitsio import read_frame
from blobhelpers.blob.learn.cnn import load_model, load_preprocessing, probabilities
from blobhelpers.blob.learn.inference import predict_logits
from blobhelpers.blob.sections import DifferenceConfig
from blobhelpers.core.config import load_params
from blobhelpers.core.paths import sha256_file, write_json


def tiles(diff_dir: Path, clip_factor: float, border_rule: str):
    """(ISR-scaled tiles, tiles in their own units, labels) of every cross-simulator difference image."""
    truth = json.loads((diff_dir / "truth.json").read_text())
    pc, rc, lc = [], [], []
    for c in truth["cases"]:
        img = read_frame(diff_dir / c["file"]).data
        p_, r_, l_, _ = crosssim_tiles(img, c["new_blobs"], clip_factor, border_rule)
        keep = [i for i, lab in enumerate(l_) if lab != "ambiguous"]
        pc.append(p_[keep])
        rc.append(r_[keep])
        lc += [l_[i] == "pos" for i in keep]
    return np.concatenate(pc), np.concatenate(rc), np.array(lc), len(truth["cases"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, help="NAME=PATH of a .keras model (repeatable)")
    p.add_argument("--xsim", type=Path, default=Path("build/crosssim/diff"))
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    dif = DifferenceConfig.from_dict(load_params(a.params).get("difference"))
    Xp, Xr, y, n_images = tiles(a.xsim, dif.clip_factor, dif.border_rule)
    out = {"data": "independent cross-simulator: grid tiles of its difference images (S/N < 3-only tiles left out)",
           "n_images": n_images, "n_tiles": int(len(y)), "n_pos": int(y.sum()), "models": {}}
    for spec in a.model:
        name, _, path = spec.partition("=")
        kind = "residual" if load_preprocessing(path)["representation"] == "residual" else "isr"
        x = to_input("residual", Xp, Xr) if kind == "residual" else to_input(kind, Xp)
        prob = probabilities(predict_logits(load_model(path), x))
        s = binary_summary(y, prob)
        # the model by its content (a path would name this machine's folders)
        out["models"][name] = {"model_sha256": sha256_file(path), "representation": kind,
                               "xsim_auc": round(float(s["auc"]), 10)}
        print(f"[exp-crosssim] {name}: cross-simulator tile AUC {s['auc']:.4f} ({len(y)} tiles)")
    write_json(a.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
