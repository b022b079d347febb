"""The ISR recipe (blobhelpers.blob.data.isrrecipe): pasted cutouts, re-z-scored crops, the released code's ranges."""

import numpy as np
import pytest

from blobhelpers.blob.data import isrrecipe as ir
from blobhelpers.blob.evaluate import isreval
from blobhelpers.blob.data.dataset import DiffInfo
from blobhelpers.blob.preprocess.scaling import ScaleParams
from blobhelpers.core.errors import InputError


def _infos(n=3):
    sp = ScaleParams(lo=-1, hi=1, mean=0, std=1, fill=0, z1=-2, z2=2, clip_factor=0.5)
    return [DiffInfo(f"d{i}.fits", sp) for i in range(n)]


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(0, 1, (1024, 1024)), -3, 3).astype(np.float32) for _ in range(n)]


def _cutouts(seed=1):
    rng = np.random.default_rng(seed)
    out = {}
    for i, s in enumerate((9, 13, 21, 15)):
        yy, xx = np.mgrid[0:s, 0:s] - (s - 1) / 2
        out[f"blob{i:02d}"] = (2.96 * np.exp(-(xx ** 2 + yy ** 2) / (2 * (s / 5) ** 2))
                               + rng.normal(0, 0.2, (s, s))).astype(np.float32)
    return out


def test_plan_counts_intensities_and_regions_follow_the_released_code():
    cut = _cutouts()
    cfg = ir.IsrRecipeConfig()
    plan = ir.plan_split("train", _infos(), 400, 7, "left", cut, sorted(cut)[:3], cfg)
    labels = plan.labels
    assert abs(labels.mean() - 0.5) < 1e-9
    per_crop = np.bincount(plan.pastes[:, 0].astype(int), minlength=len(plan))
    assert (per_crop[labels == 0] == 0).all()
    assert per_crop[labels == 1].min() == 1 and per_crop[labels == 1].max() == 5  # 1-5 per positive
    assert set(np.unique(per_crop[labels == 1])) == {1, 2, 3, 4, 5}
    assert plan.intensity.min() >= 0.5 and plan.intensity.max() <= 1.5
    assert plan.intensity.min() < 0.6 and plan.intensity.max() > 1.4  # the whole U(0.5, 1.5) range is used
    assert (plan.crops[:, 2] + 256 <= 768).all()  # training: left 75 %
    assert set(plan.pastes[:, 1].astype(int)) <= {0, 1, 2}  # only the allowed cutouts (sorted names)
    val = ir.plan_split("val", _infos(), 50, 7, "right", cut, sorted(cut)[:3], cfg)
    assert (val.crops[:, 2] == 768).all()  # the right 25 % is exactly one crop wide
    # squares lie fully inside their crop
    sizes = np.array([cut[sorted(cut)[int(c)]].shape[1] for c in plan.pastes[:, 1]])
    assert (plan.pastes[:, 2] >= 0).all() and (plan.pastes[:, 2] + sizes <= 256).all()


def test_pasted_square_replaces_the_pixels_and_the_crop_is_re_z_scored():
    cut = _cutouts()
    imgs = _images()
    cfg = ir.IsrRecipeConfig(min_blobs=1, max_blobs=1, intensity_min=1.2, intensity_max=1.2)
    plan = ir.plan_split("train", _infos(), 20, 3, "left", cut, sorted(cut), cfg)
    ds = ir.IsrRecipeDataset(plan, imgs, cut)
    i = int(np.nonzero(plan.labels == 1)[0][0])
    (k,) = plan.pastes_of(i)
    _, c, px, py = (int(v) for v in plan.pastes[k])
    d, y0, x0, _ = (int(v) for v in plan.crops[i])
    before = imgs[d][y0:y0 + 256, x0:x0 + 256].copy()
    stamp = cut[sorted(cut)[c]] * np.float32(1.2)
    manual = before.copy()
    manual[py:py + stamp.shape[0], px:px + stamp.shape[1]] = stamp  # REPLACED, not added
    manual = (manual - manual.mean()) / manual.std()
    got = ds.raw([i])[0]
    np.testing.assert_allclose(got, manual, atol=1e-5)
    assert abs(float(got.mean())) < 1e-5 and abs(float(got.std()) - 1) < 1e-4
    # negatives are re-z-scored too, and otherwise untouched
    j = int(np.nonzero(plan.labels == 0)[0][0])
    d, y0, x0, _ = (int(v) for v in plan.crops[j])
    neg = imgs[d][y0:y0 + 256, x0:x0 + 256]
    np.testing.assert_allclose(ds.raw([j])[0], (neg - neg.mean()) / neg.std(), atol=1e-5)
    # the images themselves are not modified by pasting
    np.testing.assert_array_equal(imgs[d][y0:y0 + 256, x0:x0 + 256], neg)


def test_paste_is_a_replacement_and_refuses_squares_that_do_not_fit():
    crop = np.full((256, 256), 5.0, np.float32)
    ir.paste(crop, np.ones((3, 4), np.float32), 10, 20, 0.5)
    assert crop[20:23, 10:14].tolist() == [[0.5] * 4] * 3 and crop[19, 10] == 5.0 and crop[20, 14] == 5.0
    with pytest.raises(ValueError, match="does not fit"):
        ir.paste(crop, np.ones((9, 9), np.float32), 250, 0, 1.0)


def test_batch_is_deterministic_augmented_and_refuses_project_only_options():
    cut = _cutouts()
    plan = ir.plan_split("train", _infos(), 12, 3, "left", cut, sorted(cut), ir.IsrRecipeConfig())
    ds = ir.IsrRecipeDataset(plan, _images(), cut)
    a, ya = ds.batch(np.arange(6), np.random.default_rng(5))
    b, yb = ds.batch(np.arange(6), np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (6, 256, 256) and (ya == plan.labels[:6]).all()
    plain, _ = ds.batch(np.arange(6))
    assert not np.allclose(a, plain)
    with pytest.raises(InputError, match="hard negatives"):
        ds.batch(np.arange(2), np.random.default_rng(0), hard_negatives=0.5)
    r, _ = ds.batch(np.arange(2), representation="residual")
    assert np.abs(r).max() <= 5.0


def test_plan_avoids_natural_blobs_and_is_reproducible():
    cut = _cutouts()
    infos = _infos(1)
    infos[0].natural = np.array([[400.0, 500.0, 6.0, 0.05, 3]])
    plan = ir.plan_split("train", infos, 60, 3, "left", cut, sorted(cut), ir.IsrRecipeConfig())
    x0, y0 = plan.crops[:, 2], plan.crops[:, 1]
    inside = (x0 <= 406) & (x0 + 256 > 394) & (y0 <= 506) & (y0 + 256 > 494)
    assert not inside.any()
    again = ir.plan_split("train", infos, 60, 3, "left", cut, sorted(cut), ir.IsrRecipeConfig())
    np.testing.assert_array_equal(plan.crops, again.crops)
    np.testing.assert_array_equal(plan.intensity, again.intensity)


def test_shortcut_probes_hold_no_blob_but_the_shortcut_features():
    cut = _cutouts()
    plan = ir.plan_split("val", _infos(), 20, 3, "right", cut, sorted(cut), ir.IsrRecipeConfig())
    ds = ir.IsrRecipeDataset(plan, _images(), cut)
    pr = ir.shortcut_probes(ds, 5, seed=1)
    assert set(pr) == {"plain", "blank_square", "hot_pixels"}
    n_neg = int((plan.labels == 0).sum())
    assert all(v.shape == (min(5, n_neg), 256, 256) for v in pr.values())
    # hot pixels stand above anything the clipped background reaches; blank squares are background
    # scaled by at most 1.5 (the clip at 3 -> 4.5): no blob-like peak beyond that
    assert (pr["hot_pixels"].max(axis=(1, 2)) > pr["plain"].max(axis=(1, 2)) + 0.5).all()
    assert (pr["blank_square"].max(axis=(1, 2)) < 1.5 * 3.0 * 1.05).all()
    assert not np.allclose(pr["blank_square"], pr["plain"])


def test_config_rejects_bad_ranges_and_typos():
    with pytest.raises(InputError, match="min_blobs"):
        ir.IsrRecipeConfig.from_dict({"min_blobs": 0})
    with pytest.raises(InputError, match="isr_recipe"):
        ir.IsrRecipeConfig.from_dict({"n_trian": 3})
    with pytest.raises(InputError, match="isr_recipe.models.isr2021"):
        ir.IsrRecipeConfig.from_dict({"models": {"isr2021": {"epoch": 3}}})


def test_raw_cutouts_loader_names_the_file(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, a=np.ones((300, 300), np.float32))
    with pytest.raises(InputError, match="c.npz.*'a'"):
        ir.load_raw_cutouts(p)
    with pytest.raises(InputError, match="not found"):
        ir.load_raw_cutouts(tmp_path / "missing.npz")


def test_inputs_and_binary_summary():
    x = np.random.default_rng(0).normal(3, 2, (2, 256, 256)).astype(np.float32)
    z = isreval.to_input("isr_crop", x)
    assert np.allclose(z.mean(axis=(1, 2)), 0, atol=1e-4) and np.allclose(z.std(axis=(1, 2)), 1, atol=1e-3)
    np.testing.assert_array_equal(isreval.to_input("isr", x), x)
    with pytest.raises(ValueError):
        isreval.to_input("nope", x)
    s = isreval.binary_summary([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert s["auc"] == 0.75 and s["tpr"]["k"] == 1 and s["tnr"]["k"] == 1 and s["n_pos"] == 2


def test_crosssim_tiles_label_the_grid():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (1024, 1024)).astype(np.float32)
    blobs = [{"x": 300.0, "y": 600.0, "radius": 4.0, "depth": 1.0, "snr": 8.0},
             {"x": 900.0, "y": 100.0, "radius": 4.0, "depth": 1.0, "snr": 1.0}]
    proc, raw, labels, tiles = isreval.crosssim_tiles(img, blobs)
    assert proc.shape == raw.shape == (16, 256, 256)
    pos = [t for t, l in zip(tiles, labels) if l == "pos"]
    amb = [t for t, l in zip(tiles, labels) if l == "ambiguous"]
    assert pos == [{"y0": 512, "x0": 256, "size": 256}]
    assert amb == [{"y0": 0, "x0": 768, "size": 256}]
    assert labels.count("neg") == 14
