import json
import re

import numpy as np
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.blob.learn.inference import predict_logits
from blobhelpers.blob.learn.cnn import load_model, probabilities
from blobhelpers.blob.learn.training import SubframeSequence, train_model
from blobhelpers.blob.sections import TrainConfig


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
    from blobhelpers.blob.learn.cnn import build_model
    from blobhelpers.blob.learn.training import relu_activity

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

    from blobhelpers.blob.learn.cnn import build_model, load_model
    from blobhelpers.blob.learn.training import save_model

    m = build_model("tiny", seed=3)
    a = save_model(m, tmp_path / "a.keras", "tiny")
    time.sleep(1.1)
    b = save_model(m, tmp_path / "b.keras", "tiny")
    assert a.read_bytes() == b.read_bytes()
    back = load_model(a)
    for w0, w1 in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(w0, w1)


# --------------------------------------------------------------------------- checkpoints and resume


class _Interrupted(Exception):
    pass


def _interrupt_after(monkeypatch, k):
    """Make the next training run stop (an exception) right after its checkpoint of epoch *k* (0-based)."""
    from blobhelpers.blob.learn import training

    write = training._Checkpoint.on_epoch_end

    def stop(self, epoch, logs=None):
        write(self, epoch, logs)
        if epoch == k:
            raise _Interrupted(f"after epoch {k}")

    monkeypatch.setattr(training._Checkpoint, "on_epoch_end", stop)


def _same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


# the isr recipe: Adam for epochs 1-2, SGD for 3-4 (0-based 0-1 and 2-3)
ISR_SWITCH = TrainConfig(architecture="tiny", recipe="isr", epochs=4, adam_epochs=2, batch_size=50, n_train=100)


@pytest.fixture(scope="module")
def isr_uninterrupted(easy_datasets):
    return train_model(ISR_SWITCH, easy_datasets["train"], easy_datasets["val"], seed=4, verbose=0)


@pytest.mark.parametrize("k", [0, 1, 2], ids=["inside-adam", "at-the-switch", "inside-sgd"])
def test_interrupted_run_resumes_to_identical_weights(k, easy_datasets, isr_uninterrupted, tmp_path, monkeypatch):
    """Stopped after epoch k+1 and restarted: the same weights, bit for bit, as a run never stopped."""
    ref_model, ref = isr_uninterrupted
    with monkeypatch.context() as m:
        _interrupt_after(m, k)
        with pytest.raises(_Interrupted):
            train_model(ISR_SWITCH, easy_datasets["train"], easy_datasets["val"], seed=4, verbose=0,
                        checkpoint_dir=tmp_path)
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["epoch"] == k and len(meta["history"]["loss"]) == k + 1
    model, hist = train_model(ISR_SWITCH, easy_datasets["train"], easy_datasets["val"], seed=4, verbose=0,
                              checkpoint_dir=tmp_path)
    assert _same_weights(model, ref_model)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "optimizer"):
        assert hist[key] == ref[key], key
    assert hist["optimizer"] == ["adam", "adam", "sgd", "sgd"] and len(hist["seconds"]) == 4
    assert hist["best_epoch"] == ref["best_epoch"]


def test_resume_with_dropout_cosine_schedule_and_restore_best(easy_datasets, tmp_path, monkeypatch):
    """blobnet (dropout: its seed state), AdamW + cosine decay (the iteration counter), restore_best
    (the best-epoch store); then a finished checkpoint is returned without training."""
    from blobhelpers.blob.learn.training import _keras

    cfg = TrainConfig(architecture="blobnet", width=4, recipe="adamw_cosine", epochs=3, batch_size=50, n_train=100,
                      learning_rate=0.003, restore_best=True, representation="residual")
    tr, va = easy_datasets["train"], easy_datasets["val"]
    ref_model, ref = train_model(cfg, tr, va, seed=6, verbose=0)
    with monkeypatch.context() as m:
        _interrupt_after(m, 1)
        with pytest.raises(_Interrupted):
            train_model(cfg, tr, va, seed=6, verbose=0, checkpoint_dir=tmp_path)
    model, hist = train_model(cfg, tr, va, seed=6, verbose=0, checkpoint_dir=tmp_path)
    assert _same_weights(model, ref_model)
    assert hist["loss"] == ref["loss"] and hist["val_loss"] == ref["val_loss"]
    assert hist["restored_epoch"] == ref["restored_epoch"] and hist["best_epoch"] == ref["best_epoch"]

    def no_fit(*a, **k):
        raise AssertionError("a finished checkpoint must not train again")

    monkeypatch.setattr(_keras().Model, "fit", no_fit)
    again, h2 = train_model(cfg, tr, va, seed=6, verbose=0, checkpoint_dir=tmp_path)
    assert _same_weights(again, ref_model) and h2["loss"] == ref["loss"] and len(h2["seconds"]) == 3


def test_checkpoint_layout_needs_no_pickle(easy_datasets, tmp_path):
    from blobhelpers.blob.learn.training import CHECKPOINT_FILE

    cfg = TrainConfig(architecture="tiny", recipe="isr", epochs=1, adam_epochs=1, batch_size=50, n_train=50)
    model, _ = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=2, verbose=0,
                           checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", CHECKPOINT_FILE]  # verbose=0: no log
    with np.load(tmp_path / CHECKPOINT_FILE, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        n_model = sum(k.startswith("model_") for k in z.files)
        assert n_model == len(model.variables) and any(k.startswith("optimizer_") for k in z.files)
        assert not any(k.startswith("best_") for k in z.files)  # kept only with restore_best
        np.testing.assert_array_equal(z["model_0000"], model.variables[0].numpy())
    assert meta["epoch"] == 0 and meta["epochs"] == 1 and meta["optimizer"] == "adam"
    assert meta["fingerprint_parts"]["config"]["architecture"] == "tiny" and meta["fingerprint_parts"]["seed"] == 2
    assert json.loads((tmp_path / "checkpoint.json").read_text())["fingerprint"] == meta["fingerprint"]


def test_checkpoint_of_another_configuration_is_set_aside(easy_datasets, tmp_path):
    from blobhelpers.blob.learn.training import CHECKPOINT_FILE, CheckpointWarning

    tr, va = easy_datasets["train"], easy_datasets["val"]
    cfg = TrainConfig(architecture="tiny", recipe="isr", epochs=1, adam_epochs=1, batch_size=50, n_train=50)
    train_model(cfg, tr, va, seed=2, verbose=0, checkpoint_dir=tmp_path)
    other = TrainConfig(**{**cfg.__dict__, "learning_rate": 0.002})
    with pytest.warns(CheckpointWarning, match=r"another configuration.*learning_rate 0\.001 -> 0\.002"):
        _, hist = train_model(other, tr, va, seed=2, verbose=0, checkpoint_dir=tmp_path)
    assert len(hist["loss"]) == 1 and (tmp_path / "checkpoint.rejected.npz").is_file()
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["fingerprint_parts"]["config"]["learning_rate"] == 0.002
    with pytest.warns(CheckpointWarning, match=r"seed 2 -> 3"):
        train_model(other, tr, va, seed=3, verbose=0, checkpoint_dir=tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.warns(CheckpointWarning, match="unreadable"):
        train_model(other, tr, va, seed=3, verbose=0, checkpoint_dir=tmp_path)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 0


def test_progress_lines_with_eta(easy_datasets, tmp_path, capsys):
    cfg = TrainConfig(architecture="tiny", recipe="isr", epochs=2, adam_epochs=1, batch_size=50, n_train=50)
    train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=2, verbose=2, checkpoint_dir=tmp_path / "m1")
    err = capsys.readouterr().err
    assert "[train m1] 2 epochs x 1 batches of 50 (50 subframes) on " in err
    assert re.search(r"\[train m1\] epoch 1/2  loss \d+\.\d{4}  val_loss \d+\.\d{4}  [\d.]+ s/epoch  ETA \d", err)
    assert re.search(r"\[train m1\] epoch 2/2  .* s/epoch  done", err)
    log = (tmp_path / "m1" / "progress.log").read_text()
    assert log.count("[train m1] epoch") == 2
    train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=2, verbose=0)
    assert "[train" not in capsys.readouterr().err  # verbose=0: silent


def test_training_with_a_width(easy_datasets):
    from blobhelpers.blob.learn.cnn import build_model

    cfg = TrainConfig.from_dict({"architecture": "blobnet", "recipe": "adamw_cosine", "epochs": 1, "width": 4,
                                 "batch_size": 50, "n_train": 50})
    model, hist = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=1, verbose=0)
    assert model.get_layer("conv1").filters == 4
    assert hist["n_params"] == build_model("blobnet", width=4).count_params() < build_model("blobnet").count_params()
    with pytest.raises(InputError, match="width"):
        train_model(TrainConfig(architecture="tiny", width=4, epochs=1), easy_datasets["train"],
                    easy_datasets["val"], seed=1, verbose=0)


def test_prefetched_batches_are_the_batches(easy_datasets):
    """The next batch is made in a background thread while the model trains: the batches (and so
    the training) must be those made in the calling thread, in and across epochs, and when Keras
    asks for a batch twice or out of order."""
    ds = easy_datasets["train"]
    kw = dict(batch_size=16, seed=3, hard_negatives=0.5, noise_sigma=0.2, representation="residual", nuisances=0.5)
    a, b = SubframeSequence(ds, prefetch=True, **kw), SubframeSequence(ds, prefetch=False, **kw)
    for _ in range(2):
        for i in [0, 0, 1, 2, 5, 3] + list(range(4, len(a))):
            xa, ya = a[i]
            xb, yb = b[i]
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        a.on_epoch_end()
        b.on_epoch_end()


def test_training_with_and_without_prefetch_is_identical(easy_datasets, monkeypatch):
    import functools

    from blobhelpers.blob.learn import training

    cfg = TrainConfig(architecture="tiny", recipe="isr", epochs=2, adam_epochs=1, batch_size=25, n_train=100)
    m1, h1 = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=4, verbose=0)
    monkeypatch.setattr(training, "SubframeSequence", functools.partial(SubframeSequence, prefetch=False))
    m2, h2 = train_model(cfg, easy_datasets["train"], easy_datasets["val"], seed=4, verbose=0)
    assert h1["loss"] == h2["loss"] and h1["val_loss"] == h2["val_loss"]
    assert all(np.array_equal(w1, w2) for w1, w2 in zip(m1.get_weights(), m2.get_weights()))


def test_crescents_go_to_blob_free_subframes_only_and_centred(easy_datasets):
    """``crescents``: registration residuals of deep blobs on blob-free training subframes (every
    one at fraction 1; the labels unchanged); the same seed gives the same batch. (Where they go
    within a subframe -- centred, label-0 only -- is the doctest of ``add_crescents``.)"""
    ds = easy_datasets["train"]
    kw = dict(batch_size=32, seed=5, representation="residual", prefetch=False)
    plain = SubframeSequence(ds, **kw)
    with_c = SubframeSequence(ds, crescents=1.0, **kw)
    again = SubframeSequence(ds, crescents=1.0, **kw)
    idx = plain.order[:32]
    raw_plain = ds.raw(idx)
    x_c, y_c = ds.batch(idx, np.random.default_rng(0), representation="residual", crescents=1.0)
    x_0, y_0 = ds.batch(idx, np.random.default_rng(0), representation="residual")
    assert np.array_equal(y_c, y_0) and (y_c == 0).any() and (y_c == 1).any()
    changed = np.array([not np.array_equal(a, b) for a, b in zip(x_c, x_0)])
    assert changed[y_c == 0].all()
    assert np.array_equal(raw_plain, ds.raw(idx))  # raw() is untouched by the augmentation
    assert np.array_equal(with_c[0][0], again[0][0]) and not np.array_equal(with_c[0][0], plain[0][0])
