import numpy as np
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.blob.cnn import MODELS, build_model, load_model, probabilities


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
