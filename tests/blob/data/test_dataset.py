import numpy as np
import pytest

from blobhelpers.blob.preprocess.augment import augment, dihedral
from blobhelpers.blob.data.dataset import Recipe, median_membership
from blobhelpers.core.errors import InputError
from blobhelpers.blob.sections import InjectionConfig
from blobhelpers.blob.data.datastage import build_datasets, diff_infos, load_dataset, read_diff_table


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, diff_dir, campaign_dir, cutouts_path):
    out = tmp_path_factory.mktemp("datasets")
    build_datasets(diff_dir, cutouts_path, out, seed=11, n_train=120, n_val=40, n_test=60,
                   injection=InjectionConfig(), test_cutouts=5, campaign_dir=campaign_dir, history=5)
    cache = {}
    return {s: load_dataset(s, out, diff_dir, cutouts_path, 0.75, cache) for s in ("train", "val", "test")}, out


def test_median_membership():
    assert median_membership(14, 30) == 0 and median_membership(15, 30) == 0.5 and median_membership(16, 30) == 1
    assert median_membership(2, 5) == 0 and median_membership(3, 5) == 1


def test_isr_spatial_split_and_held_out_days(datasets, diff_dir):
    ds, _ = datasets
    tr, va, te = ds["train"].recipe, ds["val"].recipe, ds["test"].recipe
    assert (tr.crops["x0"] + 256 <= 768).all()  # training: left 75 %
    assert (va.crops["x0"] >= 768).all()  # validation: right 25 %
    table = read_diff_table(diff_dir)
    train_files = set(table.loc[table["split"] == "train", "file"])
    test_files = set(table.loc[table["split"] == "test", "file"])
    assert set(tr.diff_files) == train_files and set(te.diff_files) == test_files
    assert not train_files & test_files
    assert max(table.loc[table["split"] == "train", "date_obs"]) < min(table.loc[table["split"] == "test", "date_obs"])


def test_test_set_uses_held_out_real_cutouts(datasets):
    ds, _ = datasets
    used = lambda r: {r.cutout_names[i] for i in r.inj["cutout"][r.inj["source"] == 1]}  # noqa: E731
    names = ds["train"].recipe.cutout_names
    assert used(ds["test"].recipe) <= set(names[-5:])
    assert not used(ds["train"].recipe) & set(names[-5:])
    assert not used(ds["val"].recipe) & set(names[-5:])


def test_labels_follow_injections_and_natural_blobs(datasets):
    ds, _ = datasets
    for d in ds.values():
        c = d.recipe.crops
        np.testing.assert_array_equal(c["label"], ((c["n_injected"] > 0) | (c["n_natural"] > 0)).astype(np.int8))
        assert 0.3 < c["label"].mean() < 0.7
        for i in range(len(d)):
            assert len(d.injections_of(i)) == c["n_injected"][i]


def test_natural_new_blobs_are_labelled(datasets, diff_dir, campaign_dir):
    infos = diff_infos(diff_dir, campaign_dir, None, 5)
    assert sum(len(i.natural) for i in infos) > 0  # the small campaign has new blobs
    ds, _ = datasets
    c = ds["train"].recipe.crops
    assert (c["n_natural"] > 0).any()
    assert (c["label"][c["n_natural"] > 0] == 1).all()


def test_materialisation_is_deterministic_and_additive(datasets):
    ds, _ = datasets
    tr = ds["train"]
    idx = np.arange(20)
    a, ya = tr.batch(idx)
    b, yb = tr.batch(idx)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    i = int(np.nonzero(tr.recipe.crops["n_injected"] > 0)[0][0])
    raw_inj = tr.raw([i])[0]
    c = tr.recipe.crops
    base = tr.images[c["diff_index"][i]][c["y0"][i]:c["y0"][i] + 256, c["x0"][i]:c["x0"][i] + 256]
    delta = raw_inj - base
    assert delta.min() > -0.3 * delta.max()  # added signal is a positive blob (real stamps keep faint noise)
    assert delta.max() == pytest.approx(tr.recipe.inj["depth"][tr.injections_of(i)].max(), rel=0.35)
    x1, _ = tr.batch(idx, np.random.default_rng(5))
    x2, _ = tr.batch(idx, np.random.default_rng(5))
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, a)


def test_no_brightest_pixel_shortcut(datasets):
    """Positives and negatives saturate at the same clip: the brightest pixel does not separate them."""
    from sklearn.metrics import roc_auc_score

    ds, _ = datasets
    X, y = ds["train"].arrays()
    mx = X.reshape(len(X), -1).max(axis=1)
    assert np.percentile(mx[y == 1], 25) <= np.percentile(mx[y == 0], 75)
    assert roc_auc_score(y, mx) < 0.75
    # and nothing exceeds the clip of its image
    hi = np.array([(s.hi - s.mean) / s.std for s in ds["train"].recipe.scales])
    assert (mx <= hi[ds["train"].recipe.crops["diff_index"]] + 1e-4).all()


def test_recipe_roundtrip_without_pickle(datasets, tmp_path):
    ds, out = datasets
    r = Recipe.load(out / "train.npz")
    assert r.split == "train" and r.augment and len(r) == 120
    with np.load(out / "train.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    bad = tmp_path / "bad.npz"
    bad.write_text("nope")
    with pytest.raises(InputError, match="bad.npz"):
        Recipe.load(bad)
    with pytest.raises(InputError, match="not found"):
        Recipe.load(tmp_path / "missing.npz")


def test_augmentation(rng):
    b = rng.normal(0, 1, (64, 32, 32)).astype(np.float32)
    a = augment(b, np.random.default_rng(0), noise_sigma=0.75)
    assert a.shape == b.shape and a.dtype == np.float32
    # each output is a dihedral transform of its input plus N(0, 0.75), and the 8 transforms are all used
    used = []
    for i in range(64):
        cands = [np.rot90(b[i], kk) for kk in range(4)]
        cands += [c[:, ::-1] for c in cands]
        scatter = [np.std(a[i] - c) for c in cands]
        assert min(scatter) == pytest.approx(0.75, rel=0.12)
        used.append(int(np.argmin(scatter)))
    assert len(set(used)) == 8  # 64 draws: every rotation/flip appears
    np.testing.assert_array_equal(dihedral(b[:2], np.array([1, 0]), np.array([False, True]))[0], np.rot90(b[0]))
    np.testing.assert_array_equal(dihedral(b[:2], np.array([1, 0]), np.array([False, True]))[1], b[1][:, ::-1])


def test_no_natural_blob_on_both_sides_of_the_time_split(datasets, diff_dir, campaign_dir):
    """Blobs that appeared during the training days are known by the test days: no test crop holds one."""
    ds, _ = datasets
    test_infos = diff_infos(diff_dir, campaign_dir, "test", 5)
    first = min(d.frame_index for d in test_infos)
    te = ds["test"].recipe
    n_old = 0
    for i in range(len(te)):
        d = test_infos[[p.endswith(te.diff_files[te.crops["diff_index"][i]]) for p in (x.path for x in test_infos)].index(True)]
        old = d.natural[(d.natural[:, 4] < first) & (d.natural[:, 3] >= 0.003)]
        n_old += len(old)
        x0, y0 = te.crops["x0"][i], te.crops["y0"][i]
        touches = ((old[:, 0] >= x0 - old[:, 2]) & (old[:, 0] <= x0 + 255 + old[:, 2])
                   & (old[:, 1] >= y0 - old[:, 2]) & (old[:, 1] <= y0 + 255 + old[:, 2]))
        assert not touches.any()
    assert n_old > 0  # the campaign does have lingering blobs from the training days
