import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from blobhelpers.core.errors import InputError
from blobhelpers.blob.sim.campaign import Campaign
from blobhelpers.blob.sections import CampaignConfig


def test_same_seed_same_campaign_different_seed_differs(small_config):
    a, b, c = Campaign(small_config, 3), Campaign(small_config, 3), Campaign(small_config, 4)
    fa, fb, fc = a.frame(2)[0], b.frame(2)[0], c.frame(2)[0]
    np.testing.assert_array_equal(fa, fb)
    assert a.catalog_rows() == b.catalog_rows()
    assert not np.allclose(np.nan_to_num(fa), np.nan_to_num(fc))
    assert a.catalog_rows() != c.catalog_rows()


def test_frame_does_not_depend_on_campaign_length(small_config):
    from dataclasses import replace

    long = Campaign(replace(small_config, n_frames=small_config.n_frames + 5), 3)
    short = Campaign(small_config, 3)
    np.testing.assert_array_equal(long.frame(1)[0], short.frame(1)[0])


def test_files_headers_and_catalog(campaign_dir, small_config):
    files = sorted((campaign_dir / "frames").glob("*.fits"))
    assert len(files) == small_config.n_frames
    with fits.open(files[0]) as h:
        hdr = h[0].header
        assert h[0].data.shape == (1024, 1024)
        for key in ("DATE-OBS", "TIME-OBS", "EXPSTART", "FILTER", "BUNIT", "INSTRUME", "DETECTOR"):
            assert key in hdr
        assert hdr["FILTER"] == "F153M" and hdr["BUNIT"] == "ELECTRONS"
    cat = pd.read_csv(campaign_dir / "catalog.csv", keep_default_na=False)
    for col in ("id", "x", "y", "radius", "depth", "profile", "appear_date"):
        assert col in cat.columns
    assert set(cat["profile"]) == {"disc", "ring"}
    assert cat["depth"].between(0.01, 0.31).all() and cat["radius"].between(2.4, 14.1).all()
    new = cat[cat["appear_index"] >= 0]
    assert len(new) > 0 and (new["appear_date"] != "").all()
    frames = pd.read_csv(campaign_dir / "frames.csv")
    assert list(frames["index"]) == list(range(small_config.n_frames))


def test_reference_border_is_dark_and_light_area_lit(campaign):
    img = campaign.frame(0)[0]
    border = np.r_[img[:5].ravel(), img[:, :5].ravel()]
    inner = img[100:-100, 100:-100]
    assert np.nanmedian(border) < 50  # read noise + dark only
    assert np.nanmedian(inner) > 1000
    assert np.isnan(img).sum() > 0  # bad pixels


def test_blobs_are_shifted_with_the_frame(campaign):
    # The obscuration map follows the per-frame shift of the blob pattern.
    big = max(campaign.blobs, key=lambda b: b.depth * (b.appear_index < 0))
    occ = campaign.obscuration(0, (0.0, 0.0))
    occ_s = campaign.obscuration(0, (2.0, -1.0))
    y, x = int(round(big.y)), int(round(big.x))
    assert occ[y, x] > 0.5 * big.depth
    np.testing.assert_allclose(occ_s[y - 1, x + 2], occ[y, x], rtol=1e-4, atol=1e-6)


def test_difference_has_heavy_tails(campaign):
    from blobhelpers.blob.preprocess.difference import blob_difference

    frames = [campaign.frame(i)[0] for i in range(6)]
    d = blob_difference(frames[:5], frames[5], register=False).data[50:-50, 50:-50]
    v = d[np.isfinite(d)]
    med = np.median(v)
    sigma = 1.4826 * np.median(np.abs(v - med))
    frac_5sigma = np.mean(np.abs(v - med) > 5 * sigma)
    assert frac_5sigma > 20 * 5.7e-7  # a Gaussian would give 5.7e-7


def test_unknown_parameter_is_rejected():
    with pytest.raises(InputError, match="unknown parameter"):
        CampaignConfig.from_dict({"n_frame": 3})
