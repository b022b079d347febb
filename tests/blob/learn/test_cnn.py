import numpy as np
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.blob.learn.cnn import MODELS, build_model, load_model, probabilities


@pytest.mark.parametrize("name, n_params", [("isr2021", 528_098), ("deepwfc3", 8_392_418), ("blobnet", 64_674)])
def test_architectures_and_parameter_counts(name, n_params):
    m = build_model(name)
    assert m.count_params() == n_params
    assert m.input_shape == (None, 256, 256, 1) and m.output_shape == (None, 2)
    assert m.layers[-1].get_config().get("activation") in ("linear", None)  # logits, no softmax


def test_isr_pools_differ():
    isr, rel = build_model("isr2021"), build_model("deepwfc3")
    assert isr.get_layer("flatten").output.shape[-1] == 16 * 16 * 16
    assert rel.get_layer("flatten").output.shape[-1] == 64 * 64 * 16
    assert isr.get_layer("dropout1").rate == 0.15 and isr.get_layer("dropout2").rate == 0.3


def test_unknown_model():
    with pytest.raises(InputError, match="unknown model"):
        build_model("resnet9000")
    assert "tiny" in MODELS


def test_probabilities_are_softmax_and_stable():
    z = np.array([[0.0, 0.0], [1000.0, -1000.0], [-3.0, 2.0]])
    p = probabilities(z)
    np.testing.assert_allclose(p, [0.5, 0.0, np.exp(2) / (np.exp(2) + np.exp(-3))], atol=1e-12)


def test_load_model_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "none.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 this is not a keras archive")
    with pytest.raises(InputError, match="bad.keras"):
        load_model(bad)
    import keras

    inp = keras.Input((64, 64, 1))
    wrong = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
    wrong.save(tmp_path / "wrong.keras")
    with pytest.raises(InputError, match="expected"):
        load_model(tmp_path / "wrong.keras")


def test_blobnet_width_default_and_narrower():
    """width=None is the model of before (same parameter count); width=8 is narrower; only blobnet has one."""
    from blobhelpers.blob.learn.cnn import model_width

    default, explicit, narrow = build_model("blobnet"), build_model("blobnet", width=16), build_model("blobnet", width=8)
    assert default.count_params() == explicit.count_params() == 64_674
    assert narrow.count_params() < default.count_params()
    assert [narrow.get_layer(f"conv{i}").filters for i in (1, 2, 3, 4)] == [8, 16, 32, 32]
    assert model_width(default) == 16 and model_width(narrow) == 8 and model_width(build_model("tiny")) is None
    a, b = build_model("blobnet", seed=3), build_model("blobnet", seed=3, width=None)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    for bad in dict(name="isr2021", width=8), dict(name="blobnet", width=0), dict(name="blobnet", width=2.5):
        with pytest.raises(InputError, match="width"):
            build_model(**bad)


def test_width_8_model_saves_and_loads(tmp_path):
    import json

    from blobhelpers.blob.learn.cnn import load_preprocessing
    from blobhelpers.blob.learn.training import save_model
    from blobhelpers.blob.sections import TrainConfig

    assert TrainConfig.from_dict({"width": 8}).width == 8 and TrainConfig().width is None
    m = build_model("blobnet", seed=2, width=8)
    path = save_model(m, tmp_path / "narrow.keras", "blobnet", preprocessing={"representation": "residual"})
    back = load_model(path)
    assert back.get_layer("conv1").filters == 8 and back.count_params() == m.count_params()
    for w0, w1 in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    X = np.random.default_rng(0).normal(size=(2, 256, 256, 1)).astype(np.float32)
    np.testing.assert_allclose(back.predict(X, verbose=0), m.predict(X, verbose=0), atol=1e-6)
    assert load_preprocessing(path)["width"] == 8
    # the default width leaves the preprocessing file as it was
    save_model(build_model("blobnet", seed=2), tmp_path / "default.keras", "blobnet",
               preprocessing={"representation": "residual"})
    assert json.loads((tmp_path / "default.preprocess.json").read_text()) == {"architecture": "blobnet",
                                                                            "representation": "residual"}


def test_saved_model_bytes_are_identical_across_processes(tmp_path):
    """Keras names shared objects by memory address; two processes must still write the same bytes."""
    import subprocess
    import sys

    code = ("import sys; from blobhelpers.blob.learn.cnn import build_model; "
            "from blobhelpers.blob.learn.training import save_model; "
            "save_model(build_model('tiny', seed=3), sys.argv[1], 'tiny')")
    outs = []
    for k in range(2):
        p = tmp_path / f"m{k}.keras"
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, capture_output=True, timeout=300)
        outs.append(p.read_bytes())
    assert outs[0] == outs[1]
    from blobhelpers.blob.learn.cnn import load_model

    assert load_model(tmp_path / "m0.keras").count_params() == 1410
