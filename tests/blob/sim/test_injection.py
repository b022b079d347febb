import numpy as np
import pytest
from scipy import ndimage

from blobhelpers.core.errors import InputError
from blobhelpers.blob.sim.injection import add_stamp, load_real_stamps, make_stamp, prepare_real_stamp, taper


def test_taper_is_one_inside_and_zero_at_rim():
    w = taper(21)
    assert w[10, 10] == 1 and w[0, 10] == pytest.approx(0, abs=1e-6) and w[0, 0] == 0


def test_real_stamps_fade_to_zero_and_peak_at_one(cutouts_path):
    stamps = load_real_stamps(cutouts_path)
    assert len(stamps) == 20
    for name, st in stamps.items():
        assert st.max() == pytest.approx(1.0)
        rim = np.r_[st[0], st[-1], st[:, 0], st[:, -1]]
        assert np.abs(rim).max() < 1e-6, name  # no square patch edge


def test_real_stamp_noise_is_small_compared_to_background(cutouts_path):
    """The injected texture must not carry a noise signature: its high-pass part is small."""
    stamps = load_real_stamps(cutouts_path)
    with np.load(cutouts_path) as z:
        raw = {k: z[k] for k in z.files}
    for name, st in stamps.items():
        hp = st - ndimage.gaussian_filter(st, 2.0)
        # In z units the raw cutout noise is ~1 and its signal ~3: compare like with like.
        scale = raw[name].max() - np.median(raw[name])
        assert np.std(hp) * scale < 0.45, name


def test_injection_is_additive_and_local(rng):
    img = rng.normal(0, 0.02, (256, 256)).astype(np.float32)
    before = img.copy()
    st = make_stamp(0, None, 6.0, 0, 1.0, 0.0, 0.6, 0.8, 1.0, 0, 0, 0.2, -0.3)
    add_stamp(img, st, 100.0, 50.0, 0.1)
    delta = img - before
    assert delta.max() == pytest.approx(0.1 * st.max(), rel=1e-5)
    yy, xx = np.mgrid[0:256, 0:256]
    far = np.hypot(xx - 100, yy - 50) > st.shape[0]
    assert np.all(delta[far] == 0)
    # partly off the edge: no error, only the overlapping part is added
    add_stamp(img, st, -3.0, 128.0, 0.1)
    assert (img[:, :5] != before[:, :5]).any()


def test_bad_cutout_file(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.zeros((3, 3)))
    with pytest.raises(InputError, match="x.npz"):
        load_real_stamps(p)
    obj = tmp_path / "obj.npz"
    np.savez(obj, a=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="obj.npz"):
        load_real_stamps(obj)
    with pytest.raises(InputError, match="no positive"):
        prepare_real_stamp(-np.ones((9, 9)))
