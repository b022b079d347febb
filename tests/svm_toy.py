"""A small synthetic SVM feature table shared by the SVM tests (a helper, not a test module)."""

import subprocess
import sys

import numpy as np
import pandas as pd


def toy(n_visits=60, seed=0):
    """Visits with a real row (10 % misaligned: few matches, zero rms) and 0-2 synthetic variants (large rms)."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_visits):
        det = int(rng.integers(0, 5))
        base = f"hst_{1000 + v}_{v % 90:02d}_acs_wfc_total_j{v:05d}"
        bad = v % 10 == 0
        rows.append(dict(numexp=int(rng.integers(1, 10)), rms_ra=0.0 if bad else rng.uniform(5, 20),
                         rms_dec=0.0 if bad else rng.uniform(5, 20), nmatches=1 if bad else int(rng.integers(5, 80)),
                         point=int(rng.integers(10, 900)), segment=int(rng.integers(10, 900)),
                         gaia=float(rng.integers(1, 100)), det=det, wcs=0, cat=int(rng.integers(0, 8)),
                         label=int(bad), index=base))
        for s in range(int(rng.integers(0, 3))):
            rows.append(dict(rows[-1] if s == 0 else rows[-2], rms_ra=rng.uniform(30, 90), rms_dec=rng.uniform(30, 90),
                             label=1, index=f"{base}_f{s}_all_stoc"))
    return pd.DataFrame(rows)


def svm_cli(*args, cwd=None):
    """``python -m blobhelpers.svm ARGS`` as a subprocess (text output, no check)."""
    return subprocess.run([sys.executable, "-m", "blobhelpers.svm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, check=False)


def logreg_model_dir(folder, threshold):
    """A logreg SVM model fitted on :func:`toy` data and saved in *folder*."""
    from blobhelpers.svm.features import sample_kind
    from blobhelpers.svm.models import build_model

    df = toy(60)
    m = build_model("logreg", {}, seed=0).fit(df, df["label"], sample_kind(df))
    m.threshold = threshold
    return m.save(folder / "logreg")
