"""Benchmark: augmented 256x256 training subframes per second (the data stage's hot loop).

Builds a small campaign in a temporary folder (or uses the pipeline's build/ outputs with
--use-build), then materialises batches of training subframes -- crop, additive blob
injection, ISR scaling, rotation/flip and N(0, 0.75) noise -- and reports the median, min and
max rate over repeated runs. Prints a table and writes JSON to benchmarks/results/.

    python benchmarks/bench_subframes.py [--batch 1000] [--repeats 7] [--use-build]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--use-build", action="store_true", help="use build/ from `dvc repro` instead of a temp campaign")
    args = ap.parse_args()

    from blobhelpers.blob.sections import InjectionConfig
    from blobhelpers.blob.data.datastage import build_datasets, build_differences, load_dataset
    from blobhelpers.blob.sim.campaign import simulate_campaign
    from blobhelpers.blob.sections import CampaignConfig

    cutouts = ROOT / "data" / "blob_cutouts" / "real_blob_cutouts.npz"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.use_build:
            diffs, dsets = ROOT / "build" / "diffs", ROOT / "build" / "datasets"
        else:
            simulate_campaign(tmp / "camp", CampaignConfig(n_frames=14), seed=1, progress=False)
            build_differences([tmp / "camp" / "frames"], tmp / "diffs", history=10, test_fraction=0.25,
                              campaign_dir=tmp / "camp", progress=False)
            build_datasets(tmp / "diffs", cutouts, tmp / "ds", seed=0, n_train=max(args.batch, 2000), n_val=10,
                           n_test=10, injection=InjectionConfig(), campaign_dir=tmp / "camp", history=10)
            diffs, dsets = tmp / "diffs", tmp / "ds"
        ds = load_dataset("train", dsets, diffs, cutouts)
        rng = np.random.default_rng(0)
        n = min(args.batch, len(ds))
        starts = np.arange(0, len(ds) - n + 1, max(1, (len(ds) - n) // max(1, args.repeats))) if len(ds) > n else [0]
        ds.batch(np.arange(n), rng)  # warm-up (page faults, thread pool)
        rates, phases = [], []
        for r in range(args.repeats):
            idx = np.arange(n) + int(starts[r % len(starts)])
            t0 = time.perf_counter()
            ds.raw(idx)  # crop + injection only (timed as its own phase)
            t1 = time.perf_counter()
            ds.batch(idx, rng)
            t2 = time.perf_counter()
            rates.append(n / (t2 - t1))
            phases.append(t1 - t0)
    res = {
        "benchmark": "augmented_subframes_per_second",
        "batch": n, "repeats": args.repeats, "cores": os.cpu_count(), "machine": platform.platform(terse=True),
        "median": statistics.median(rates), "min": min(rates), "max": max(rates),
        "crop_and_inject_only_s_median": statistics.median(phases),
        "target": 1000, "source": "build/" if args.use_build else "temporary 14-frame campaign",
    }
    print(f"{'metric':<40}{'value':>12}")
    for k in ("batch", "repeats", "cores", "median", "min", "max", "crop_and_inject_only_s_median", "target"):
        v = res[k]
        print(f"{k:<40}{v:>12.1f}" if isinstance(v, float) else f"{k:<40}{v:>12}")
    out = ROOT / "benchmarks" / "results" / "bench_subframes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
