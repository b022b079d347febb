import numpy as np
import pytest
from astropy.visualization import ZScaleInterval

from blobhelpers.blob.preprocess.scaling import (apply_scaling, border_mask, extract_tiles, fill_bad, scale_image,
                                    scaling_params, tile_origins, zscale)


def heavy_tailed(rng, n=1024, frac=0.02):
    img = rng.normal(0, 1, (n, n)).astype(np.float32)
    m = rng.random(img.shape) < frac
    img[m] += (rng.standard_t(2, m.sum()) * 4).astype(np.float32)
    return img


def test_zscale_fit_identical_to_astropy_on_the_same_samples(rng):
    """Same IRAF line fit: give astropy exactly our ginga-style sample (stride 1 on 1000 values)."""
    for _ in range(5):
        img = heavy_tailed(rng)
        sample = img[::32, ::32].ravel()[:1000]  # ginga 3.1's stride for 1024^2 (docs/facts.md section 5)
        ours = zscale(img)
        ref = ZScaleInterval(n_samples=1000).get_limits(sample)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def test_zscale_close_to_astropy_on_whole_heavy_tailed_images(rng):
    """Different sampling (2-D grid vs 1-D stride): limits agree to 10 % of the zscale range."""
    for _ in range(5):
        img = heavy_tailed(rng)
        z1, z2 = zscale(img)
        a1, a2 = ZScaleInterval().get_limits(img)
        tol = 0.10 * (a2 - a1)
        assert abs(z1 - a1) < tol and abs(z2 - a2) < tol


def test_zscale_flat_and_nan_images():
    img = np.full((64, 64), 5.0)
    img[0, 0] = np.nan
    assert zscale(img) == (5.0, 5.0)
    with pytest.raises(ValueError, match="no finite"):
        zscale(np.full((8, 8), np.nan))


def test_scaling_clips_at_half_zscale_and_zscores(rng):
    img = heavy_tailed(rng)
    scaled, p = scale_image(img)
    assert p.lo == pytest.approx(0.5 * p.z1) and p.hi == pytest.approx(0.5 * p.z2)
    inner = scaled[10:-10, 10:-10]
    assert scaled.mean() == pytest.approx(0, abs=1e-4) and scaled.std() == pytest.approx(1, abs=1e-3)
    assert scaled.max() == pytest.approx((p.hi - p.mean) / p.std, rel=1e-5)
    assert inner.min() == pytest.approx((p.lo - p.mean) / p.std, rel=1e-5)
    # heavy tails: clip near +-3 z units (the real cutouts saturate at -3.04/+2.96)
    assert 2.0 < scaled.max() < 4.0 and -4.0 < scaled.min() < -2.0


def test_nan_and_border_go_to_median(rng):
    img = rng.normal(0, 1, (1024, 1024)).astype(np.float32)
    img[:5] = 500.0  # reference pixels with junk
    img[300, 300] = np.nan
    filled, fill = fill_bad(img)
    assert filled[0, 0] == fill and filled[300, 300] == fill and np.isfinite(filled).all()
    assert fill == pytest.approx(np.nanmedian(img[10:-10, 10:-10]), abs=0.01)
    isr = border_mask((1024, 1024), "isr")
    assert isr[1001, 500] and isr[500, 9] and not isr[1000, 500] and not isr[500, 10]
    sym = border_mask((1024, 1024))
    assert sym[1014, 500] and not sym[1013, 500] and sym[500, 9]


def test_apply_scaling_matches_whole_image_on_a_crop(rng):
    img = heavy_tailed(rng)
    scaled, p = scale_image(img)
    crop = fill_bad(img)[0][200:456, 300:556]
    np.testing.assert_allclose(apply_scaling(crop, p), scaled[200:456, 300:556], atol=1e-5)
    assert p.to_dict()["clip_factor"] == 0.5 and scaling_params(img).lo == p.lo


def test_tiles_cover_the_frame():
    origins = tile_origins()
    assert len(origins) == 16 and (0, 0) in origins and (768, 768) in origins
    img = np.arange(1024 * 1024, dtype=np.float32).reshape(1024, 1024)
    tiles = extract_tiles(img, origins)
    assert tiles.shape == (16, 256, 256) and tiles[5, 0, 0] == img[256, 256]
    assert len(tile_origins(step=128)) == 49
