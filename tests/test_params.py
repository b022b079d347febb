"""Every params.yaml section is typed and rejects typos; profiles merge into valid parameters."""

from pathlib import Path

import pytest

from blobhelpers.core.config import SECTIONS, deep_merge, load_params, validate_params
from blobhelpers.core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_and_every_profile_validate():
    base = load_params(ROOT / "params.yaml")
    got = validate_params(base)
    assert set(got) == set(SECTIONS) & set(base)
    assert got["difference"].history == base["difference"]["history"]
    assert got["crosssim"].n_new_diff == base["crosssim"]["n_new_diff"]
    for prof in sorted((ROOT / "profiles").glob("*.yaml")):
        validate_params(deep_merge(base, load_params(prof)), str(prof))


@pytest.mark.parametrize("path", [("difference", "histroy"), ("dataset", "n_trian"), ("dataset", "injection", "max_blob"),
                                  ("evaluate", "fpr"), ("monitor", "snr_mni"), ("monitor", "tune", "sed"),
                                  ("monitor", "regression", "match"), ("monitor", "campaign", "n_frame"),
                                  ("train", "models", "blobnet", "epoch"), ("simulate", "skye"),
                                  ("crosssim", "n_new"), ("crosssim", "stress", "levels", "gradiant"),
                                  ("isr_recipe", "n_trian"), ("isr_recipe", "models", "isr2021", "epoch"),
                                  ("svm", "cv_split"), ("svm_sim", "n_visit"), ("svm_images", "epoch")])
def test_a_typo_in_any_section_is_rejected_with_its_name(path):
    params = load_params(ROOT / "params.yaml")
    d = params
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = 1
    with pytest.raises(InputError, match=(path[0] if path[0] != "train" else "train.models") + r"\b"):
        validate_params(params)


def test_the_seed_must_be_an_integer():
    params = load_params(ROOT / "params.yaml")
    params["base"]["seed"] = "20210800"
    with pytest.raises(InputError, match="base.seed"):
        validate_params(params)


def test_stage14_comparison_adds_spacekit_with_its_own_epochs_only_when_asked():
    from blobhelpers.svm.sections import SvmImagesSection

    tab = {"C": 0.3}
    kw = SvmImagesSection.from_dict({"models": ["tabular", "cnn2d"], "epochs": 7, "spacekit_epochs": 2,
                                     "inner_splits": 3}).comparison(tab)
    assert kw["models"] == ["tabular", "cnn2d", "spacekit"]
    assert kw["epochs"] == {"tabular": 7, "cnn2d": 7, "spacekit": 2}
    assert kw["params"] == {"tabular": tab, "stacked": {"tabular_params": tab, "inner_splits": 3}}
    off = SvmImagesSection.from_dict({"spacekit_epochs": 0}).comparison(tab)
    assert off["models"] == ["tabular", "cnn2d", "stacked"] and "spacekit" not in off["epochs"]
    listed = SvmImagesSection.from_dict({"models": ["spacekit"], "epochs": 5, "spacekit_epochs": 1}).comparison(tab)
    assert listed["models"] == ["spacekit"] and listed["epochs"] == {"spacekit": 1}
