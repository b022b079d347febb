"""Shared fixtures: a small simulated campaign on disk (made once per test session)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
CUTOUTS = ROOT / "data" / "blob_cutouts" / "real_blob_cutouts.npz"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cutouts_path() -> Path:
    if not CUTOUTS.exists():
        pytest.fail(f"{CUTOUTS} missing: run `dvc pull` (tasks.sh does it) before the tests")
    return CUTOUTS


@pytest.fixture(scope="session")
def small_config():
    from blobhelpers.simulate import CampaignConfig

    return CampaignConfig(n_frames=9, n_existing=80, new_blob_rate=1.5, start_date="2024-03-01T02:00:00")


@pytest.fixture(scope="session")
def campaign_dir(tmp_path_factory, small_config) -> Path:
    from blobhelpers.simulate import simulate_campaign

    out = tmp_path_factory.mktemp("campaign")
    simulate_campaign(out, small_config, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def campaign(small_config):
    from blobhelpers.simulate import Campaign

    return Campaign(small_config, seed=7)


@pytest.fixture(scope="session")
def diff_dir(tmp_path_factory, campaign_dir) -> Path:
    from blobhelpers.prep import build_differences

    out = tmp_path_factory.mktemp("diffs")
    build_differences([campaign_dir / "frames"], out, history=5, test_fraction=0.34, campaign_dir=campaign_dir,
                      progress=False)
    return out


@pytest.fixture()
def rng():
    return np.random.default_rng(12345)
