"""Benchmark: classify one full difference image (detection core + CNN verification + saliency), and
training throughput (samples/s) of each architecture.

Uses models/best.keras and a difference image from build/diffs when the pipeline has run,
otherwise an untrained `blobnet` and a synthetic image (speed does not depend on the weights).
Reports medians (min, max) over repeated runs after a warm-up; imports are not timed.

    python benchmarks/bench_classify.py [--repeats 9] [--train-samples 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--train-samples", type=int, default=400)
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()

    from blobhelpers.blob.detect.classify import classify_image
    from blobhelpers.blob.io.fitsio import read_frame
    from blobhelpers.blob.learn.cnn import build_model, load_model

    best = ROOT / "models" / "best.keras"
    model = load_model(best) if best.exists() else build_model("blobnet")
    diffs = sorted((ROOT / "build" / "diffs").glob("diff_*.fits"))
    if diffs:
        img = read_frame(diffs[-1]).data
    else:
        img = np.random.default_rng(0).normal(0, 0.02, (1024, 1024)).astype(np.float32)
    res = {"cores": os.cpu_count(), "model": str(best) if best.exists() else "untrained blobnet",
           "image": str(diffs[-1]) if diffs else "synthetic"}
    from blobhelpers.blob.learn.cnn import load_preprocessing

    prep = load_preprocessing(best) if best.exists() else {"representation": "residual"}
    res["representation"] = prep["representation"]
    # a difference image with 20 strong candidates, so that the CNN verification is part of the time
    from blobhelpers.blob.sim.shapes import BlobShape, render

    busy = img.copy()
    for k in range(20):
        render(busy, 60.0 + 45 * k, 100.0 + 40 * k, BlobShape(6.0), 0.2)
    for label, im, kw in (("classify_frame_default", img, dict(threshold=0.5)),
                          ("classify_frame_20_candidates_all_saliency", busy, dict(threshold=0.0)),
                          ("classify_frame_no_tile_cnn", img, dict(threshold=0.5, tile_cnn=False))):
        classify_image(im, model, preprocessing=prep, **kw)  # warm-up (tracing)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            classify_image(im, model, preprocessing=prep, **kw)
            ts.append(time.perf_counter() - t0)
        res[label + "_s"] = stats(ts)
    if not args.skip_training:
        from blobhelpers.blob.learn.training import SubframeSequence, _compile
        import keras

        rng = np.random.default_rng(0)

        class Fake:
            def __init__(self, n):
                self.x = rng.normal(0, 1, (n, 256, 256)).astype(np.float32)
                self.y = (rng.random(n) < 0.5).astype(np.int64)
                self.labels = self.y

            def __len__(self):
                return len(self.y)

            def batch(self, idx, rng=None, hard=0.0, noise=None, boost=1.0, representation="isr", nuisances=0.0):
                return self.x[idx], self.y[idx]

        data = Fake(args.train_samples)
        for arch in ("isr2021", "deepwfc3", "blobnet"):
            m = build_model(arch, seed=0)
            _compile(m, keras.optimizers.Adam(1e-3))
            seq = SubframeSequence(data, 100 if arch != "blobnet" else 50, 0, augment=False)
            m.fit(seq, epochs=1, verbose=0)  # warm-up epoch
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                m.fit(seq, epochs=1, verbose=0)
                ts.append(args.train_samples / (time.perf_counter() - t0))
            res[f"train_samples_per_s_{arch}"] = stats(ts)
    for k, v in res.items():
        print(f"{k:<48}{json.dumps(v) if isinstance(v, dict) else v}")
    out = ROOT / "benchmarks" / "results" / "bench_classify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
