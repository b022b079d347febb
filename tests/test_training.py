import numpy as np
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.blob.scoring import predict_logits
from blobhelpers.blob.cnn import load_model, probabilities
from blobhelpers.blob.training import SubframeSequence, TrainConfig, train_model


def test_short_training_run_learns(trained_tiny, easy_datasets):
    model, hist, _ = trained_tiny
    assert hist["loss"][-1] < 0.8 * hist["loss"][0]
    X, y = easy_datasets["test"].arrays()
    p = probabilities(predict_logits(model, X))
    acc = np.mean((p >= 0.5) == y)
    assert acc > 0.75, acc  # chance is ~0.5
    assert len(hist["samples_per_s"]) == 6 and all(s > 0 for s in hist["samples_per_s"])


def test_saved_model_reloads_identically(trained_tiny, easy_datasets):
    model, _, path = trained_tiny
    X, _ = easy_datasets["val"].batch(np.arange(8))
    np.testing.assert_allclose(predict_logits(load_model(path), X), predict_logits(model, X), atol=1e-5)


def test_same_seed_same_training(easy_datasets):
    cfg = TrainConfig(architecture="tiny", recipe="isr", epochs=2, adam_epochs=1, batch_size=50, n_train=100)
    _, h1 = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=9, verbose=0)
    _, h2 = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=9, verbose=0)
    assert h1["loss"] == pytest.approx(h2["loss"], rel=1e-5)
    assert h1["optimizer"] == ["adam", "sgd"]


def test_sequence_augments_freshly_each_epoch(easy_datasets):
    seq = SubframeSequence(easy_datasets["train"], batch_size=10, seed=1)
    x0, y0 = seq[0]
    assert x0.shape == (10, 256, 256, 1) and y0.dtype == np.int32
    seq.on_epoch_end()
    x1, _ = seq[0]
    assert not np.array_equal(x0, x1)
    assert len(seq) == 30


def test_bad_training_config():
    with pytest.raises(InputError, match="unknown parameter"):
        TrainConfig.from_dict({"epoch": 3})


def test_curriculum_boost_scales_injected_blobs_only(easy_datasets):
    cfg = TrainConfig(curriculum_boost=3.0, curriculum_epochs=4)
    assert [cfg.boost(e) for e in (0, 2, 4, 9)] == pytest.approx([3.0, 2.0, 1.0, 1.0])
    assert TrainConfig().boost(0) == 1.0
    ds = easy_datasets["train"]
    pos = np.array([i for i in np.nonzero(ds.labels == 1)[0] if len(ds.injections_of(int(i)))][:3])
    neg = np.array([i for i in np.nonzero(ds.labels == 0)[0] if not len(ds.injections_of(int(i)))][:3])
    assert len(pos) == 3 and len(neg) == 3
    base, strong = ds.raw(pos), ds.raw(pos, boost=3.0)
    # the injected signal (raw minus the blob-free crop) triples; blob-free crops are unchanged
    signal = base - ds.raw(pos, boost=0.0)
    np.testing.assert_allclose(strong - ds.raw(pos, boost=0.0), 3.0 * signal, atol=1e-4)
    assert np.abs(signal).max() > 0.01
    np.testing.assert_array_equal(ds.raw(neg), ds.raw(neg, boost=3.0))


def test_relu_activity_finds_dead_units():
    from blobhelpers.blob.cnn import build_model
    from blobhelpers.blob.training import relu_activity

    model = build_model("isr2021", seed=1)
    X = np.random.default_rng(0).normal(size=(4, 256, 256)).astype(np.float32)
    alive = relu_activity(model, X)
    assert set(alive) == {"conv1", "conv2", "fc1"}
    assert all(0.1 < v["active"] < 0.95 and v["dead"] < 0.5 for v in alive.values())
    conv2 = model.get_layer("conv2")
    w, b = conv2.get_weights()
    conv2.set_weights([w, np.full_like(b, -1e3)])  # every conv2 unit pushed below zero
    dead = relu_activity(model, X)
    assert dead["conv2"] == {"active": 0.0, "dead": 1.0}
    assert dead["conv1"] == pytest.approx(alive["conv1"])


def test_saved_model_bytes_do_not_depend_on_the_time(tmp_path, monkeypatch):
    """Same weights, same file: a rerun with identical results changes no DVC hash."""
    import time

    from blobhelpers.blob.cnn import build_model, load_model
    from blobhelpers.blob.training import save_model

    m = build_model("tiny", seed=3)
    a = save_model(m, tmp_path / "a.keras", "tiny")
    time.sleep(1.1)
    b = save_model(m, tmp_path / "b.keras", "tiny")
    assert a.read_bytes() == b.read_bytes()
    back = load_model(a)
    for w0, w1 in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(w0, w1)
