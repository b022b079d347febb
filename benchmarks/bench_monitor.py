"""Benchmark: one daily monitor run -- 33 frames of 1024x1024 read from disk, ordered by date,
normalised, median-stacked, registered, differenced, candidates detected in today's difference and
in the means of the last 2 and 3 one-day differences (the accumulated evidence), verified by the
CNN and explained -- and its peak memory. Three ways:

* **daily job**: the two earlier days' one-day differences are read from ``OUT/products``, where
  the runs of those days saved them (``blobhelpers monitor`` saves products by default; the
  reuse is checked by their ``DIFFKEY``); this is the run a cron job makes each day;
* **first run**: no products yet (a first day, or ``--no-products``): the two earlier days'
  differences are made too;
* accumulation off (31 frames' worth of work).

Then the daily job as cron runs it: ``python -m blobhelpers monitor <frames> --model ... --out OUT``
in a fresh process on three consecutive days with the same OUT (products saved, HTML written); the
third day's wall time and the peak resident memory of its process (imports, TensorFlow, the model,
the run, the HTML: the memory target is judged on it) are printed. The in-process timings above are
after imports and model loading; the peak memory of this benchmark's own process (which also ran
the set-up days, a first run and warm-ups) is printed for reference.

Each repeat is a fresh `Monitor` (no frame cache: every run reads and normalises all 31 frames,
as a cron job does); the model is loaded once (imports and model loading are not timed). Frames:
the regression campaign of stage 04 (build/monitor_campaign) or the data stage's campaign, else a
freshly simulated one. Peak memory: the process's maximum resident set size (includes TensorFlow).

    python benchmarks/bench_monitor.py [--repeats 7] [--end N]
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
    ap.add_argument("--end", type=int, default=None,
                    help="use the 33 campaign frames ending before this index (default: the last 33); e.g. 34 makes "
                         "day 3 of the daily command a day with alerts on stage 04's regression campaign")
    args = ap.parse_args()

    from blobhelpers.blob.learn.cnn import build_model, load_model, load_preprocessing
    from blobhelpers.blob.detect.monitor import Monitor, MonitorConfig
    from blobhelpers.blob.sim.campaign import simulate_campaign
    from blobhelpers.blob.sections import CampaignConfig

    frames = None
    for d in (ROOT / "build" / "monitor_campaign" / "frames", ROOT / "build" / "campaign" / "frames"):
        fs = sorted(d.glob("*.fits"))
        if len(fs) >= 33:
            end = len(fs) if args.end is None else args.end
            if not 33 <= end <= len(fs):
                raise SystemExit(f"--end {end}: needs 33 <= end <= {len(fs)} (frames in {d})")
            frames = fs[end - 33:end]
            break
    tmp = None
    if frames is None:
        tmp = tempfile.TemporaryDirectory()
        simulate_campaign(tmp.name, CampaignConfig(n_frames=33), seed=1, progress=False)
        frames = sorted((Path(tmp.name) / "frames").glob("*.fits"))
    best = ROOT / "models" / "best.keras"
    model = load_model(best) if best.exists() else build_model("blobnet")
    prep = load_preprocessing(best) if best.exists() else {"representation": "residual"}
    from blobhelpers.blob.detect.monitor import run_monitor

    # the daily job's OUT: the runs of the two days before saved their products there
    out_dir = tempfile.TemporaryDirectory()
    products = Path(out_dir.name) / "products"
    cfg_on = MonitorConfig(history=30, min_history=30, threshold=0.0, accumulate=(2, 3), saliency=False)
    for n in (len(frames) - 2, len(frames) - 1):
        run_monitor(frames[:n], best if best.exists() else model, out_dir.name, cfg_on, html=False,
                    save_products=True)
    results, reused = {}, []
    for name, acc, folder in (("daily job", (2, 3), products), ("first run", (2, 3), None),
                              ("accumulation off", (), None)):
        cfg = MonitorConfig(history=30, min_history=30, threshold=0.0, accumulate=acc)  # threshold 0: all explained
        Monitor(frames, model, cfg, preprocessing=prep).process(len(frames) - 1)  # warm-up (TF graph tracing)
        times, verdicts = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            mon = Monitor(frames, model, cfg, preprocessing=prep, products=folder)
            rec = mon.process(len(mon.ordered) - 1).record
            times.append(time.perf_counter() - t0)
            verdicts.append(len(rec["candidates"]))
            if folder is not None:
                reused = list(mon.reused)
        results[name] = (times, verdicts[-1], rec["windows"])
    out_dir.cleanup()
    if len(reused) != 2:
        raise SystemExit(f"the daily job reused {reused}, not the two earlier days' differences")
    times, n_cands, windows = results["daily job"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    command = daily_command(frames, best if best.exists() else None)
    res = {"cores": os.cpu_count(), "frames": len(frames), "source": str(frames[0].parent),
           "model": str(best) if best.exists() else "untrained blobnet",
           "daily_run_s": {"median": statistics.median(times), "min": min(times), "max": max(times),
                           "n": len(times), "windows": windows},
           "daily_run_s_first_run": {"median": statistics.median(results["first run"][0]),
                                     "n": len(results["first run"][0])},
           "daily_run_s_without_accumulation": {"median": statistics.median(results["accumulation off"][0]),
                                                "n": len(results["accumulation off"][0])},
           "reused_from_products": reused,
           "candidates_explained": n_cands, "peak_rss_mb_benchmark_process": round(peak_mb, 1),
           "daily_command": command,
           "representation": prep["representation"],
           "targets": {"daily_run_s": 1.0, "peak_rss_mb": 1024}}
    for name, (ts, _, w) in results.items():
        print(f"{'daily monitor run, ' + name + ' (windows ' + ','.join(map(str, w)) + ')':52s} median "
              f"{statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}, n={len(ts)}); target <= 1 s")
    if command:
        print(f"{'daily command, end to end (fresh process, day 3)':52s} {command['wall_s']:.2f} s wall, "
              f"{command['cpu_s']:.2f} CPU-s (imports and model loading included)")
        print(f"{'peak resident memory of the daily command':52s} {command['peak_rss_mb']:.0f} MB; target <= 1024 MB")
    print(f"{'peak resident memory of this benchmark process':52s} {peak_mb:.0f} MB (set-up days, first runs, "
          f"warm-ups; for reference)")
    out = ROOT / "benchmarks" / "results" / "bench_monitor.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    if tmp is not None:
        tmp.cleanup()


# The command's own peak resident memory: VmHWM of its process when it exits (getrusage's ru_maxrss of a
# child forked from this large process would count the fork's copy of it).
_PEAK_WRAPPER = """
import atexit, sys
def _peak(path=sys.argv[1]):
    hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    open(path, "w").write(hwm.split()[1])
atexit.register(_peak)
sys.argv = ["blobhelpers"] + sys.argv[2:]
from blobhelpers.cli import main
sys.exit(main())
"""


def daily_command(frames, model) -> dict | None:
    """Run ``python -m blobhelpers monitor`` on the last three days of *frames* (a fresh process each
    day, the same OUT, as cron runs it); the third day's wall and CPU time and the peak resident memory
    of its process (``os.wait4``). None without a trained model."""
    import subprocess
    import sys

    if model is None:
        return None
    out = tempfile.TemporaryDirectory()
    res = None
    for n in (len(frames) - 2, len(frames) - 1, len(frames)):
        t0 = time.perf_counter()
        peak_file = Path(out.name) / "peak_kb"
        proc = subprocess.Popen([sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), "monitor", *map(str, frames[:n]),
                                 "--model", str(model), "-o", out.name, "-q"],
                                stdout=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            raise SystemExit(f"blobhelpers monitor exited {code} on day {n}")
        res = {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
               "peak_rss_mb": round(int(peak_file.read_text()) / 1024, 1), "exit": code}
    out.cleanup()
    return res


if __name__ == "__main__":
    main()
