"""Benchmark: one daily monitor run -- 31 frames of 1024x1024 read from disk, ordered by date,
normalised, median-stacked, registered, differenced, candidates detected, verified by the CNN and
explained -- and its peak memory.

Each repeat is a fresh `Monitor` (no frame cache: every run reads and normalises all 31 frames,
as a cron job does); the model is loaded once (imports and model loading are not timed). Frames:
the regression campaign of stage 04 (build/monitor_campaign) or the data stage's campaign, else a
freshly simulated one. Peak memory: the process's maximum resident set size (includes TensorFlow).

    python benchmarks/bench_monitor.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from blobhelpers.blob.learn.cnn import build_model, load_model, load_preprocessing
    from blobhelpers.blob.detect.monitor import Monitor, MonitorConfig
    from blobhelpers.blob.sim.campaign import simulate_campaign
    from blobhelpers.blob.sections import CampaignConfig

    frames = None
    for d in (ROOT / "build" / "monitor_campaign" / "frames", ROOT / "build" / "campaign" / "frames"):
        fs = sorted(d.glob("*.fits"))
        if len(fs) >= 31:
            frames = fs[-31:]
            break
    tmp = None
    if frames is None:
        tmp = tempfile.TemporaryDirectory()
        simulate_campaign(tmp.name, CampaignConfig(n_frames=31), seed=1, progress=False)
        frames = sorted((Path(tmp.name) / "frames").glob("*.fits"))
    best = ROOT / "models" / "best.keras"
    model = load_model(best) if best.exists() else build_model("blobnet")
    cfg = MonitorConfig(history=30, min_history=30, threshold=0.0)  # threshold 0: every candidate explained
    prep = load_preprocessing(best) if best.exists() else {"representation": "residual"}
    Monitor(frames, model, cfg, preprocessing=prep).process(30)  # warm-up (TF graph tracing)
    times, verdicts = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mon = Monitor(frames, model, cfg, preprocessing=prep)
        rec = mon.process(len(mon.ordered) - 1).record
        times.append(time.perf_counter() - t0)
        verdicts.append(len(rec["candidates"]))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {"cores": os.cpu_count(), "frames": len(frames), "source": str(frames[0].parent),
           "model": str(best) if best.exists() else "untrained blobnet",
           "daily_run_s": {"median": statistics.median(times), "min": min(times), "max": max(times),
                           "n": len(times)},
           "candidates_explained": verdicts[-1], "peak_rss_mb": round(peak_mb, 1),
           "representation": prep["representation"],
           "targets": {"daily_run_s": 1.0, "peak_rss_mb": 1536}}
    print(f"{'daily monitor run (31 frames from disk)':45s} median {res['daily_run_s']['median']:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}); target <= 1 s")
    print(f"{'peak resident memory (incl. TensorFlow)':45s} {peak_mb:.0f} MB; target <= 1536 MB")
    out = ROOT / "benchmarks" / "results" / "bench_monitor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
