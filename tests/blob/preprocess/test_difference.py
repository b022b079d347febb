import numpy as np
import pytest
from astropy.io import fits

from blobhelpers.blob.sim.shapes import BlobShape, render
from blobhelpers.blob.preprocess.difference import (blob_difference, difference_from_files, estimate_shift, median_stack,
                                    normalize, order_frames)
from blobhelpers.core.errors import InputError


def test_median_stack_matches_numpy_and_ignores_nan(rng):
    cube = rng.normal(1, 0.1, (7, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(median_stack(list(cube)), np.median(cube, axis=0), rtol=0, atol=1e-7)
    even = cube[:6]
    np.testing.assert_allclose(median_stack(list(even)), np.median(even, axis=0), atol=1e-7)
    cube[0, 3, 3] = np.nan
    assert np.isfinite(median_stack(list(cube))).all()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 15, 29, 30, 31, 33, 64, 65])
@pytest.mark.parametrize("threads", [1, 3])
def test_median_stack_network_is_the_exact_median(rng, n, threads):
    """The selection network gives np.median's values bit for bit (ties, odd and even counts, more
    frames than the network serves, several thread bands with a ragged last one), NaN as the fill."""
    cube = rng.normal(1, 0.1, (n, 70, 13)).astype(np.float32)
    cube[:, :5] = np.round(cube[:, :5], 1)            # many ties
    ref = np.median(cube, axis=0).astype(np.float32)
    np.testing.assert_array_equal(median_stack(list(cube), threads=threads), ref)
    cube[0, 40, 3] = np.nan
    filled = np.where(np.isfinite(cube), cube, np.float32(1.0))
    np.testing.assert_array_equal(median_stack(list(cube), threads=threads),
                                  np.median(filled, axis=0).astype(np.float32))


@pytest.mark.parametrize("shape", [(1024, 1024), (1014, 1014), (90, 70), (70, 33)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_shift_cubic_is_scipys_shift_bit_for_bit(rng, shape, threads):
    """The banded, threaded cubic shift of the dip model gives ndimage.shift's values to the last bit:
    sub-pixel, whole-pixel, zero and large shifts (beyond the bands' margin: scipy's own call), with a
    blob pattern and NaN-free edges that "nearest" extends."""
    from scipy import ndimage

    from blobhelpers.blob.preprocess.difference import shift_cubic

    img = np.minimum(1.0, rng.normal(1.0, 0.01, shape)).astype(np.float32)
    render(img, shape[1] * 0.3, shape[0] * 0.6, BlobShape(6.0), -0.2)
    for sx, sy in [(0.37, -0.81), (-1.6, 2.25), (1.0, 0.0), (0.0, 0.0), (-8.4, 3.3), (15.5, -0.2)]:
        got = shift_cubic(img, (sx, sy), threads=threads)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, ndimage.shift(img, (sy, sx), order=3, mode="nearest"))


def test_median_network_selects_every_middle_rank():
    """For each count, on every 0/1 input (the 0-1 principle: a comparator network that selects a
    rank on all 0/1 inputs selects it on all inputs) the outputs hold the middle rank(s)."""
    import itertools

    from blobhelpers.blob.preprocess.difference import median_network

    for n in range(1, 13):
        comps, outs = median_network(n)
        for bits in itertools.product((0, 1), repeat=n):
            v = list(bits)
            for a, b in comps:
                v[a], v[b] = min(v[a], v[b]), max(v[a], v[b])
            ranks = sorted(bits)
            want = [ranks[n // 2]] if n % 2 else [ranks[n // 2 - 1], ranks[n // 2]]
            assert [v[o] for o in outs] == want, (n, bits)
    assert len(median_network(30)[0]) < 160   # pruned: Batcher's full 32-wire sort has 191


def test_normalize_removes_illumination_gradient(rng):
    yy, xx = np.mgrid[0:1024, 0:1024]
    img = (2000 * (1 + 0.3 * xx / 1024)).astype(np.float32)
    n = normalize(img)
    assert abs(np.median(n[100:-100, 100:-100]) - 1) < 0.01
    assert np.ptp(n[500, 50:-50]) < 0.02


def test_known_new_blob_is_recovered(campaign):
    """A blob that appears in the newest frame shows up positive, at its depth, where it is."""
    idx = next(i for i in range(1, campaign.config.n_frames)
               if any(b.appear_index == i and b.depth > 0.05 and b.category != "edge" for b in campaign.blobs))
    blob = next(b for b in campaign.blobs if b.appear_index == idx and b.depth > 0.05 and b.category != "edge")
    hist = [campaign.frame(i)[0] for i in range(max(0, idx - 5), idx)]
    cur, _, truth = campaign.frame(idx)
    d = blob_difference(hist, cur, register=True).data
    x, y = blob.x + truth["shift_x"], blob.y + truth["shift_y"]
    yy, xx = np.mgrid[0:1024, 0:1024]
    core = np.hypot(xx - x, yy - y) < max(1.5, 0.5 * blob.shape.radius)
    far = (np.hypot(xx - x, yy - y) > 40) & (np.hypot(xx - x, yy - y) < 80)
    inside = np.nanmedian(d[core])
    assert inside == pytest.approx(blob.depth, rel=0.35)
    assert abs(np.nanmedian(d[far])) < 0.2 * blob.depth


def test_estimate_shift_recovers_known_shift(small_config):
    """Real simulated frames (noise, hot pixels, CRs...) with a steady history and a known jump."""
    from dataclasses import replace

    from blobhelpers.blob.sim.campaign import Campaign

    camp = Campaign(replace(small_config, shift_sigma=0.0, jump_fraction=0.0), seed=21)
    stack = median_stack([normalize(camp.frame(i)[0]) for i in range(5)])
    for sx_true, sy_true in ((0.35, -0.2), (-0.1, 0.3)):
        camp.shifts[5] = (sx_true, sy_true)
        sx, sy = estimate_shift(stack, normalize(camp.frame(5)[0]))
        assert sx == pytest.approx(sx_true, abs=0.08) and sy == pytest.approx(sy_true, abs=0.08)


def _full_image_shift(stack, current, sigma=1.5, iterations=5, margin=16, grad_quantile=0.97, select_sigma=3.0):
    """The registration fit written the plain way: the whole stack shifted every iteration."""
    from scipy import ndimage

    from blobhelpers.blob.preprocess.difference import _blob_pattern, _valid_mask

    s_fill, c_fill = _blob_pattern(stack), _blob_pattern(np.where(np.isfinite(current), current, stack))
    B = ndimage.gaussian_filter(s_fill, sigma)
    D = B - ndimage.gaussian_filter(c_fill, sigma)
    gy, gx = np.gradient(ndimage.gaussian_filter(s_fill, select_sigma))
    g2 = gx * gx + gy * gy
    valid = _valid_mask(B.shape, margin) & np.isfinite(current)
    use = valid & (g2 >= np.quantile(g2[valid], grad_quantile))
    s, resid_sigma = np.zeros(2), None
    for _ in range(iterations):
        Bs = ndimage.shift(B, (s[1], s[0]), order=3, mode="nearest") if s.any() else B
        r = D - (B - Bs)
        jy, jx = np.gradient(Bs)
        sel = use if resid_sigma is None else use & (np.abs(r) < 4 * resid_sigma)
        a, b_, c = (jx[sel] ** 2).sum(), (jx[sel] * jy[sel]).sum(), (jy[sel] ** 2).sum()
        rhs = np.array([(jx[sel] * r[sel]).sum(), (jy[sel] * r[sel]).sum()])
        det = a * c - b_ * b_
        if not np.isfinite(det) or det <= 0:
            break
        ds = np.array([c * rhs[0] - b_ * rhs[1], a * rhs[1] - b_ * rhs[0]]) / det
        s += ds
        resid_sigma = 1.4826 * np.median(np.abs(r[use] - np.median(r[use])))
        if np.hypot(*ds) < 1e-3:
            break
    return float(s[0]), float(s[1])


def test_estimate_shift_is_the_full_image_fit_bit_for_bit(small_config):
    """The fit evaluates the shifted stack only where it needs it; the shift must be exactly the
    one of the plain full-image fit (every difference image, and so every result, depends on it)."""
    from blobhelpers.blob.sim.campaign import Campaign

    camp = Campaign(small_config, seed=8)
    stack = median_stack([normalize(camp.frame(i)[0]) for i in range(6)])
    for k, shift in ((6, (0.31, -0.17)), (7, (-0.05, 0.42)), (8, (0.0, 0.0))):
        camp.shifts[k] = shift
        cur = normalize(camp.frame(k)[0])
        cur[100:140, 300:330] = np.nan  # masked pixels take part in the selection
        got = estimate_shift(stack, cur)
        assert got == _full_image_shift(stack, cur)
        assert got != (0.0, 0.0)


def test_registration_suppresses_dips():
    rng = np.random.default_rng(3)
    shapes = [(rng.uniform(50, 970, 2), BlobShape(rng.uniform(4, 8), "disc"), rng.uniform(0.1, 0.25))
              for _ in range(60)]

    def frame(shift, seed):
        occ = np.zeros((1024, 1024), np.float32)
        for (x, y), s, d in shapes:
            render(occ, x + shift[0], y + shift[1], s, d)
        r = np.random.default_rng(seed)
        return (3000 * (1 - occ) + r.normal(0, 55, occ.shape)).astype(np.float32)

    hist = [frame((0, 0), k) for k in range(5)]
    cur = frame((0.4, -0.3), 99)
    raw = blob_difference(hist, cur, register=False)
    reg = blob_difference(hist, cur, register=True)
    assert reg.shift[0] == pytest.approx(0.4, abs=0.05) and reg.shift[1] == pytest.approx(-0.3, abs=0.05)
    rim = np.zeros((1024, 1024), bool)
    yy, xx = np.mgrid[0:1024, 0:1024]
    for (x, y), s, d in shapes:
        rim |= np.abs(np.hypot(xx - x, yy - y) - s.radius) < 1.5
    near = np.zeros((1024, 1024), bool)
    for (x, y), s, d in shapes:
        near |= np.hypot(xx - x, yy - y) < s.radius + 6
    noise = np.std(raw.data[20:-20, 20:-20][~near[20:-20, 20:-20]])
    dip_raw = np.sqrt(np.std(raw.data[rim]) ** 2 - noise ** 2)
    dip_reg = np.sqrt(max(np.std(reg.data[rim]) ** 2 - noise ** 2, 0.0))
    assert dip_raw > 0.5 * noise  # the dips are clearly there before registration
    assert dip_reg < 0.35 * dip_raw


def _dated(path, date, value=1000.0):
    fits.PrimaryHDU(np.full((1024, 1024), value, "f4"), header=fits.Header({"DATE-OBS": date})).writeto(path)
    return path


def test_frames_are_ordered_by_date_not_name(tmp_path):
    a = _dated(tmp_path / "a.fits", "2022-01-03")
    b = _dated(tmp_path / "b.fits", "2022-01-01")
    c = _dated(tmp_path / "c.fits", "2022-01-02")
    assert [p.name for p, _ in order_frames([a, b, c])] == ["b.fits", "c.fits", "a.fits"]
    d, cur = difference_from_files([a, b, c], history=30, register=False)
    assert cur.path.name == "a.fits" and d.n_history == 2


def test_difference_needs_history(tmp_path):
    a = _dated(tmp_path / "a.fits", "2022-01-03")
    with pytest.raises(InputError, match="no earlier frames"):
        difference_from_files([a])


def test_median_stack_of_nothing_is_a_clear_error():
    with pytest.raises(InputError, match="no frames"):
        median_stack([])


def test_block_medians_equal_numpy_medians(rng):
    from blobhelpers.blob.preprocess.difference import block_medians

    img = rng.normal(1.0, 0.02, (128, 96)).astype(np.float32)
    img[rng.random(img.shape) < 0.05] = 1.0  # ties
    ref = np.median(img.reshape(4, 32, 3, 32).transpose(0, 2, 1, 3).reshape(4, 3, -1), axis=-1)
    np.testing.assert_array_equal(block_medians(img), ref)
    # two NaN in a block: the median of its good values, exactly; an all-NaN block: NaN
    img[3, 5] = img[17, 20] = np.nan
    img[64:96, 32:64] = np.nan
    med = block_medians(img)
    np.testing.assert_array_equal(med[0, 0], np.nanmedian(img[:32, :32]))
    assert np.isnan(med[2, 1]) and np.isfinite(np.delete(med.ravel(), 2 * 3 + 1)).all()


def _block_medians_by_sorting(img, block):
    """The rule block_medians implements, spelled out: a block's b bad values (NaN, +-inf) count as
    floor(b/2) values below its good ones and ceil(b/2) above; the median of the result."""
    ny, nx = img.shape
    out = np.empty((ny // block, nx // block), np.float32)
    for i in range(ny // block):
        for j in range(nx // block):
            v = img[i * block:(i + 1) * block, j * block:(j + 1) * block].ravel()
            good = np.sort(v[np.isfinite(v)])
            b = v.size - good.size
            full = np.concatenate([np.full(b // 2, -np.inf, np.float32), good, np.full(b - b // 2, np.inf, np.float32)])
            k = v.size // 2
            with np.errstate(invalid="ignore"):
                m = full[k] if v.size % 2 else (full[k - 1] + full[k]) / np.float32(2)
            out[i, j] = m if np.isfinite(m) else np.nan
    return out


def test_block_medians_bad_values_rule_and_the_input_untouched(rng):
    """Every count of bad values per block (0 .. all), odd and even block sizes, ties, one block
    column (where the blocks are a view of the input): the rule to the last bit, the input unchanged."""
    from blobhelpers.blob.preprocess.difference import block_medians

    for trial in range(150):
        block = int(rng.choice([1, 2, 3, 4, 5, 8]))
        shape = (block * int(rng.integers(1, 5)), block * int(rng.integers(1, 5)))
        img = rng.normal(size=shape).astype(np.float32)
        if trial % 3 == 0:
            img = np.round(img, 1)
        img[rng.random(shape) < rng.random() * rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])] = np.nan
        if trial % 5 == 0:
            img[rng.random(shape) < 0.1] = rng.choice([np.inf, -np.inf])
        before = img.copy()
        np.testing.assert_array_equal(block_medians(img, block), _block_medians_by_sorting(img, block))
        np.testing.assert_array_equal(img, before)


def test_median3x3_equals_scipy_median_filter(rng):
    from scipy import ndimage

    from blobhelpers.blob.preprocess.difference import median3x3

    for shape in ((64, 80), (5, 3), (3, 3)):
        a = rng.normal(size=shape).astype(np.float32)
        a[rng.random(shape) < 0.2] = 0.25  # ties
        np.testing.assert_array_equal(median3x3(a), ndimage.median_filter(a, size=3))
