"""Every params.yaml section is typed and rejects typos; profiles merge into valid parameters."""

from pathlib import Path

import re

import pytest
import yaml

from blobhelpers.core.config import deep_merge, load_params
from blobhelpers.params import SECTIONS, check
from blobhelpers.core.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_params_yaml_and_every_profile_validate():
    base = load_params(ROOT / "params.yaml")
    got = check(base)
    assert set(got) == set(SECTIONS) & set(base)
    assert got["difference"].history == base["difference"]["history"]
    assert got["crosssim"].n_new_diff == base["crosssim"]["n_new_diff"]
    for prof in sorted((ROOT / "profiles").glob("*.yaml")):
        check(deep_merge(base, load_params(prof)), str(prof))


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
        check(params)


def test_the_seed_must_be_an_integer():
    params = load_params(ROOT / "params.yaml")
    params["base"]["seed"] = "20210800"
    with pytest.raises(InputError, match="base.seed"):
        check(params)


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


#: One key per section (and sub-section) given a value of the wrong type.
WRONG_TYPES = [(("difference", "history"), "thirty"), (("dataset", "n_train"), "2000"),
               (("dataset", "injection", "depth_min"), "shallow"), (("evaluate", "fpr_target"), [0.03]),
               (("monitor", "snr_min"), "high"), (("monitor", "tune", "n_frames"), 60.5),
               (("monitor", "regression", "match_px"), "2"), (("monitor", "campaign", "n_frames"), True),
               (("train", "models", "blobnet", "epochs"), "twelve"), (("train", "select_fpr"), {"a": 1}),
               (("simulate", "sky_e"), "bright"), (("crosssim", "n_new_diff"), 4.5),
               (("crosssim", "stress", "n_per"), "4"), (("isr_recipe", "n_train"), "many"),
               (("isr_recipe", "models", "isr2021", "learning_rate"), "fast"), (("svm", "cv_splits"), "5"),
               (("svm_sim", "n_visits"), [1]), (("svm_images", "epochs"), "12")]


@pytest.mark.parametrize("path, value", WRONG_TYPES, ids=[".".join(p) for p, _ in WRONG_TYPES])
def test_a_wrong_type_in_any_section_is_rejected_naming_the_key(path, value):
    params = load_params(ROOT / "params.yaml")
    d = params
    for k in path[:-1]:
        d = d[k]
    assert path[-1] in d or path[1] == "campaign", f"{path} is not in params.yaml"
    d[path[-1]] = value
    key = ".".join(path) if path[:2] != ("train", "models") else "train.models.<name>." + path[-1]
    if path[:2] in (("dataset", "injection"), ("isr_recipe", "models")):
        key = path[-1]  # sub-sections checked by their own class: named by their key
    with pytest.raises(InputError, match=rf"\b{re.escape(key)}: expected "):
        check(params)


def test_every_section_has_its_wrong_type_case():
    assert {p[0] for p, _ in WRONG_TYPES} == set(SECTIONS)


def test_params_check_command_exits_2_naming_the_key(tmp_path, capsys):
    from blobhelpers.cli import main

    params = load_params(ROOT / "params.yaml")
    params["difference"]["history"] = "thirty"
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(params))
    assert main(["params", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "difference.history: expected an integer, got 'thirty'" in err
    assert main(["params", "check", str(ROOT / "params.yaml")]) == 0
