"""Benchmark: wall time and peak memory of the whole default pipeline (`dvc repro --force`).

Runs in a temporary clone of the last commit (``--working-tree``: a copy of the git-tracked and
new unignored files instead) so the working tree is untouched; the first run pays for nothing but the pipeline itself
(the virtual environment must already exist: `bash tasks.sh setup`). Prints each stage's wall
time as it ends, and afterwards ``git status --porcelain`` of the copy: with the committed
outputs of the same code and parameters it must be empty (no churn).

    python benchmarks/bench_pipeline.py [--repeats 1] [--profile NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)


def children_cpu() -> float:
    """CPU seconds of every finished, waited-for descendant of this process (user + system)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def seconds_of(text: str) -> float:
    """``"9 min 10"`` or ``"42"`` (the runner's durations, without the final " s") -> seconds."""
    m = re.fullmatch(r"(?:(\d+) min )?(\d+)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return 60.0 * int(m.group(1) or 0) + int(m.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", default=None, help="apply profiles/NAME.yaml first (default: params.yaml as is)")
    ap.add_argument("--working-tree", action="store_true",
                    help="benchmark the working tree as it is (default: a clone of the last commit; the no-churn "
                         "check is meaningful only then, since reports are labelled with their code's commit)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="move the benchmarked copy here afterwards (its outputs, dvc.lock and reports included)")
    args = ap.parse_args()
    if args.keep and args.keep.exists():
        sys.exit(f"--keep {args.keep}: already exists")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        env["PYTHONPATH"] = str(repo)
        if args.working_tree:
            repo.mkdir()
            clean_copy(repo)
            setup = [["git", "init", "-q"], ["git", "add", "-A"],
                     ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench"]]
        else:  # a clone: the reports' code-commit labels match the committed ones
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout.strip()
            if dirty:
                print("note: uncommitted changes are not benchmarked (--working-tree includes them):\n" + dirty)
            setup = [["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(repo)]]
        for cmd in setup + [[sys.executable, "-m", "dvc", "pull", "-q", "data.dvc"]]:
            subprocess.run(cmd, cwd=repo if repo.exists() else tmp, env=env, check=True, capture_output=True)
        if args.profile:
            subprocess.run([sys.executable, "-m", "blobhelpers", "profile", args.profile], cwd=repo, env=env,
                           check=True)
        stages: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for rep in range(args.repeats):
            t0, c0 = time.perf_counter(), children_cpu()
            last = t0
            # the runner prints "[report] <notebook>: done in ..." per stage; the time between those
            # lines (DVC's own work on the stage included) is the stage's wall time
            with subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force"], cwd=repo, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
                tail = []
                for line in proc.stdout:
                    tail = (tail + [line])[-40:]
                    m = re.match(r"\[report\] (\S+): done in ", line)
                    if m:
                        now = time.perf_counter()
                        stages.setdefault(m.group(1), []).append(now - last)
                        c = re.search(r", CPU ((?:\d+ min )?\d+) s = ", line)
                        if c:  # the runner's CPU time of the stage (its kernel and workers included)
                            cpu.setdefault(m.group(1), []).append(seconds_of(c.group(1)))
                        print(f"[bench {rep + 1}/{args.repeats}] {m.group(1)}: {now - last:.0f} s "
                              f"(total {now - t0:.0f} s)", flush=True)
                        last = now
            if proc.returncode:
                sys.exit(f"dvc repro failed (exit {proc.returncode}):\n" + "".join(tail))
            walls.append(time.perf_counter() - t0)
            cpus.append(children_cpu() - c0)
        # the no-churn check: a rerun that gives the committed results changes no tracked file
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo, env=env, capture_output=True,
                                 text=True, check=True).stdout.splitlines()
        if args.keep:
            shutil.move(str(repo), str(args.keep))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res = {"benchmark": "dvc_repro_default_pipeline", "profile": args.profile or "default", "repeats": args.repeats,
           "cores": os.cpu_count(), "wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
           "wall_s_max": max(walls), "peak_child_rss_mb": peak_mb, "target_wall_s": 900,
           "stage_wall_s_median": {k: round(statistics.median(v), 1) for k, v in stages.items()},
           # CPU seconds on all cores (user + system; dvc, the stage runners, kernels and their workers):
           # cpu_s / cores is the shortest wall time these cores could give the same work
           "cpu_s_median": round(statistics.median(cpus), 1),
           "cores_used_mean": round(statistics.median(cpus) / statistics.median(walls), 2),
           "stage_cpu_s_median": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
           "git_status_after": changed}
    for k, v in res.items():
        print(f"{k:<24}{v}")
    out = ROOT / "benchmarks" / "results" / f"bench_pipeline_{res['profile']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
