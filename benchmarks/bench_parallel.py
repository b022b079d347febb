"""Benchmark: what the two-core changes buy, each against the one-thread way, with identity checks.

* the monitor over N days of stage 04's regression campaign (``Monitor.process_many``),
  1 thread vs the default (2): seconds per day, and whether the records are identical;
* the registration fit (``estimate_shift``) against the plain full-image fit (the test's
  reference, which shifts the whole stack every iteration): seconds per frame, identical shifts;
* training one model for 2 epochs with the next batch made in a background thread or not:
  seconds per epoch, identical weights.

Needs the outputs of stages 01, 02 and 04 (``dvc repro monitor``). Timings vary with the load of
the machine: run it on an otherwise idle machine.

    python benchmarks/bench_parallel.py [--days 40] [--model blobnet]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def bench_monitor(days: int) -> dict:
    from blobhelpers.blob.learn.cnn import load_model
    from blobhelpers.blob.detect.monitor import KnownCatalog, Monitor, MonitorConfig

    frames = sorted((ROOT / "build" / "monitor_campaign" / "frames").glob("*.fits"))[: 30 + days]
    if len(frames) < 31:
        sys.exit("run `dvc repro monitor` first (build/monitor_campaign/frames)")
    model = load_model(ROOT / "models" / "best.keras")
    out = {}
    for workers in (1, 2):
        mon = Monitor(frames, model, MonitorConfig(), KnownCatalog([]))
        todo = mon.targets(all_frames=True)
        recs, t0 = [], time.perf_counter()
        for _, res in mon.process_many(todo, workers=workers):
            rec = dict(res.record)
            rec.pop("processed_utc")
            recs.append(json.dumps(rec, sort_keys=True, default=str))
        out[workers] = ((time.perf_counter() - t0) / len(todo), recs)
    return {"monitor_days": len(out[1][1]), "monitor_s_per_day_1_thread": round(out[1][0], 3),
            "monitor_s_per_day_2_threads": round(out[2][0], 3), "monitor_records_identical": out[1][1] == out[2][1]}


def bench_shift(n: int = 20) -> dict:
    from test_difference import _full_image_shift

    from blobhelpers.blob.preprocess import difference as dm
    from blobhelpers.blob.io.fitsio import read_frame

    frames = sorted((ROOT / "build" / "monitor_campaign" / "frames").glob("*.fits"))[: 30 + n]
    stack = dm.median_stack(dm.normalize_many([read_frame(p).data for p in frames[:30]]))
    t_full = t_fast = 0.0
    same = 0
    for p in frames[30:]:
        cur = dm.normalize(dm.to_full_frame(read_frame(p).data))
        t0 = time.perf_counter()
        a = _full_image_shift(stack, cur)
        t1 = time.perf_counter()
        b = dm.estimate_shift(stack, cur)
        t_full += t1 - t0
        t_fast += time.perf_counter() - t1
        same += a == b
    k = len(frames) - 30
    return {"shift_frames": k, "shift_s_full_image": round(t_full / k, 3), "shift_s_fast": round(t_fast / k, 3),
            "shift_identical": f"{same}/{k}"}


def bench_training(name: str) -> dict:
    import yaml

    from blobhelpers.blob.learn import training
    from blobhelpers.blob.data.datastage import load_dataset
    from blobhelpers.blob.sections import DatasetConfig
    from blobhelpers.core.config import ProjectPaths

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    paths = ProjectPaths.default()
    cache: dict = {}
    noise = DatasetConfig.from_dict(params["dataset"]).noise_sigma
    tr = load_dataset("train", paths.datasets, paths.diffs, paths.cutouts, noise, cache)
    va = load_dataset("val", paths.datasets, paths.diffs, paths.cutouts, noise, cache)
    d = {k: v for k, v in params["train"]["models"][name].items()}
    d["epochs"] = 2
    if "adam_epochs" in d:
        d["adam_epochs"] = 2
    cfg = training.TrainConfig.from_dict(d)
    plain = training.SubframeSequence
    out = {}
    try:
        for prefetch in (False, True):
            training.SubframeSequence = functools.partial(plain, prefetch=prefetch)
            model, hist = training.train_model(cfg, tr, va, seed=1, verbose=0)
            out[prefetch] = (float(np.mean(hist["seconds"])), model.get_weights())
    finally:
        training.SubframeSequence = plain
    same = all(np.array_equal(a, b) for a, b in zip(out[False][1], out[True][1]))
    return {"train_model": name, "train_s_per_epoch_in_turn": round(out[False][0], 2),
            "train_s_per_epoch_prefetch": round(out[True][0], 2), "train_weights_identical": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=40)
    ap.add_argument("--model", default="blobnet")
    args = ap.parse_args()
    res = {**bench_shift(), **bench_monitor(args.days), **bench_training(args.model)}
    for k, v in res.items():
        print(f"{k:<32}{v}")
    out = ROOT / "benchmarks" / "results" / "bench_parallel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
