"""Benchmark: one simulated SVM visit per detector at the default size -- simulate (sky, exposures),
process (per-exposure sources, relative + absolute alignment, CR flags, drizzle, catalogs,
measurement), write the files, render the 3 PNGs -- median of N runs, wall-clock seconds.

Each run simulates the same visit (same seed) into a fresh temporary folder; imports are not
timed. The field kind is a stellar cluster (the most sources, the slowest case) unless
``--field-kind`` says otherwise. Target: <= 10 s per visit on 2 cores.

    python benchmarks/bench_svm_simulate.py [--repeats 3] [--size 256] [--field-kind stellar_cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    from blobhelpers.svm.render import render_product
    from blobhelpers.svm.simulate import FIELD_KINDS, SimConfig, process_visit, simulate_visit
    from blobhelpers.svm.simulate import write_visit_products

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--field-kind", choices=sorted(FIELD_KINDS), default="stellar_cluster")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = ap.parse_args()
    cfg = SimConfig(size=args.size)
    rows = []
    for det in ("ir", "uvis", "wfc", "hrc", "sbc"):
        times = {"simulate": [], "process": [], "write": [], "render": [], "total": []}
        info = {}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                v = simulate_visit(det, 0, 0, cfg, field_kind=args.field_kind)
                t1 = time.perf_counter()
                res = process_visit(v, cfg)
                t2 = time.perf_counter()
                folder = write_visit_products(v, res, Path(tmp) / v.meta["ipppss"], config=cfg)
                t3 = time.perf_counter()
                render_product(folder / f"{v.index}_{v.spec.product}.fits", Path(tmp) / "png")
                t4 = time.perf_counter()
            for k, a, b in (("simulate", t0, t1), ("process", t1, t2), ("write", t2, t3), ("render", t3, t4),
                            ("total", t0, t4)):
                times[k].append(b - a)
            nx = res["img"].shape
            info = {"numexp": len(v.exposures), "chips": v.spec.nchips, "chip": list(v.exposures[0].chips[0].shape),
                    "drz": list(nx), "stars": len(v.truth["stars"]["ra"]), "point": len(res["point"]),
                    "nmatches": res["align"]["fit"]["nmatches"]}
        rows.append({"detector": det, **info, **{k: statistics.median(t) for k, t in times.items()}})
    print(f"cores available: {len(os.sched_getaffinity(0))}; size {args.size}; field {args.field_kind}; "
          f"median of {args.repeats}")
    print(f"{'det':5} {'nexp':>4} {'chip':>9} {'drz':>9} {'stars':>5} {'point':>5} {'nmat':>4} "
          f"{'sim':>6} {'proc':>6} {'write':>6} {'render':>6} {'total':>6}")
    for r in rows:
        print(f"{r['detector']:5} {r['numexp']:>4} {'x'.join(map(str, r['chip'])) + ('x2' if r['chips'] == 2 else ''):>9} "
              f"{'x'.join(map(str, r['drz'])):>9} {r['stars']:>5} {r['point']:>5} {r['nmatches']:>4} "
              f"{r['simulate']:6.2f} {r['process']:6.2f} {r['write']:6.2f} {r['render']:6.2f} {r['total']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
