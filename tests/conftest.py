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
    from blobhelpers.blob.sections import CampaignConfig

    return CampaignConfig(n_frames=9, n_existing=80, new_blob_rate=1.5, start_date="2024-03-01T02:00:00")


@pytest.fixture(scope="session")
def campaign_dir(tmp_path_factory, small_config) -> Path:
    from blobhelpers.blob.sim.campaign import simulate_campaign

    out = tmp_path_factory.mktemp("campaign")
    simulate_campaign(out, small_config, seed=7, progress=False)
    return out


@pytest.fixture(scope="session")
def campaign(small_config):
    from blobhelpers.blob.sim.campaign import Campaign

    return Campaign(small_config, seed=7)


@pytest.fixture(scope="session")
def diff_dir(tmp_path_factory, campaign_dir) -> Path:
    from blobhelpers.blob.data.datastage import build_differences

    out = tmp_path_factory.mktemp("diffs")
    build_differences([campaign_dir / "frames"], out, history=5, test_fraction=0.34, campaign_dir=campaign_dir,
                      progress=False)
    return out


@pytest.fixture()
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def easy_datasets(tmp_path_factory, diff_dir, campaign_dir, cutouts_path):
    """Train/val/test recipes with strong blobs only (depth 8-25 %): an easy set."""
    from blobhelpers.blob.sections import InjectionConfig
    from blobhelpers.blob.data.datastage import build_datasets, load_dataset

    out = tmp_path_factory.mktemp("easy")
    build_datasets(diff_dir, cutouts_path, out, seed=3, n_train=300, n_val=100, n_test=60,
                   injection=InjectionConfig(depth_min=0.08, depth_max=0.25, max_blobs=1), campaign_dir=campaign_dir,
                   history=5)
    cache = {}
    return {s: load_dataset(s, out, diff_dir, cutouts_path, 0.75, cache) for s in ("train", "val", "test")}


@pytest.fixture(scope="session")
def trained_tiny(easy_datasets, tmp_path_factory):
    """A small model trained for a few epochs on the easy set, saved as .keras."""
    from blobhelpers.blob.learn.training import save_model, train_model
    from blobhelpers.blob.sections import TrainConfig

    cfg = TrainConfig(architecture="tiny", recipe="adamw_cosine", epochs=6, batch_size=25, learning_rate=0.01,
                      representation="residual")
    model, hist = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=5, verbose=0)
    path = save_model(model, tmp_path_factory.mktemp("models") / "tiny.keras", "tiny",
                      preprocessing={"representation": "residual"})
    return model, hist, path
