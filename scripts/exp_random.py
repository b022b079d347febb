"""Queue a random search over blobnet's hyperparameters as DVC experiments (the grid's alternative).

    python scripts/exp_random.py [--n 18] [--seed 20261205] [--name PREFIX] [--dry-run]

The space is the grid's (scripts/exp_grid.sh), sampled instead of enumerated, with the same budget:
  train.models.blobnet.learning_rate   log-uniform in [0.0005, 0.002]
  train.models.blobnet.width           8 or 16 (the architecture's default)
  train.models.blobnet.noise_sigma     uniform in [0.1, 0.4]
Values are drawn once from the seed (numpy's PCG64), rounded to 3 significant digits, and printed, so a
rerun queues the same points. Like the grid, each experiment runs the pipeline up to stage `train` and
is compared on its VALIDATION metric; build/ products in place are copied in (-C). Nothing runs until
the queue is started (`dvc queue start`). scripts/exp_table.py exports both searches as one table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"learning_rate": (5e-4, 2e-3), "width": (8, 16), "noise_sigma": (0.1, 0.4)}


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


def draw(n: int, seed: int) -> list[dict]:
    """*n* points of the search space, reproducible from *seed*.

    >>> pts = draw(3, 1); [sorted(p) for p in pts][0], len(pts)
    (['learning_rate', 'noise_sigma', 'width'], 3)
    >>> all(5e-4 <= p["learning_rate"] <= 2e-3 and p["width"] in (8, 16) and 0.1 <= p["noise_sigma"] <= 0.4
    ...     for p in draw(50, 2))
    True
    """
    rng = np.random.default_rng(seed)
    lo, hi = SPACE["learning_rate"]
    out = []
    for _ in range(n):
        lr = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        width = int(rng.choice(SPACE["width"]))
        noise = rng.uniform(*SPACE["noise_sigma"])
        out.append({"learning_rate": _round3(lr), "width": width, "noise_sigma": _round3(noise)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=18, help="experiments (default 18: the grid's budget)")
    p.add_argument("--seed", type=int, default=20261205)
    p.add_argument("--name", default=None, help="name prefix (default random-<date>-<time>)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, queue nothing")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    name = a.name or "random-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    dvc = shlex.split(os.environ["DVC"]) if os.environ.get("DVC") else (
        [str(Path(".venv/bin/dvc"))] if Path(".venv/bin/dvc").exists() else ["dvc"])
    copies = [arg for d in ("build/campaign", "build/diffs", "build/datasets", "build/checkpoints")
              if Path(d).exists() for arg in ("-C", d)]
    for k, pt in enumerate(draw(a.n, a.seed), 1):
        cmd = [*dvc, "exp", "run", "--queue", "--name", f"{name}-{k}",
               "-S", f"train.models.blobnet.learning_rate={pt['learning_rate']}",
               "-S", f"++train.models.blobnet.width={pt['width']}",
               "-S", f"train.models.blobnet.noise_sigma={pt['noise_sigma']}", *copies, "train"]
        print(f"[exp-random] {name}-{k}: {pt}")
        if not a.dry_run:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if not a.dry_run:
        print(f"[exp-random] queued {a.n}; run them with `{' '.join(dvc)} queue start` (see scripts/exp_grid.sh)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
