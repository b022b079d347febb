"""A stage run by hand works in scratch/<stage>/: the real inputs through links, its own outputs fresh."""

import os

import pytest
import yaml

from blobhelpers.core.config import ProjectPaths, stage_params
from blobhelpers.core.errors import InputError
from blobhelpers.core.scratch import scratch_project, stage_outputs


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "blobhelpers").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "models").mkdir()
    (root / "models" / "best.keras").write_text("model")
    for d in ("metrics/details", "plots/03_evaluate", "plots/02_train", "build/datasets"):
        (root / d).mkdir(parents=True)
    (root / "metrics" / "03_evaluate.json").write_text("committed")
    (root / "metrics" / "02_train.json").write_text("upstream")
    (root / "metrics" / "details" / "03_evaluate.json").write_text("committed details")
    (root / "plots" / "03_evaluate" / "roc.csv").write_text("committed plot")
    (root / "params.yaml").write_text(yaml.safe_dump({"base": {"seed": 7}, "evaluate": {"fpr_target": 0.03}}))
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "train": {"cmd": "python -m blobhelpers.core.report notebooks/02_train.py", "outs": ["models"]},
        "evaluate": {"cmd": "python -m blobhelpers.core.report notebooks/03_evaluate.py",
                     "outs": ["reports/03_evaluate.html", {"plots/03_evaluate": {"cache": False}}],
                     "metrics": [{"metrics/03_evaluate.json": {"cache": False}}, "metrics/details/03_evaluate.json"]},
    }}))
    return root


def test_scratch_mirrors_the_project_without_the_stage_outputs(project):
    assert set(stage_outputs(project, "03_evaluate")) == {"reports/03_evaluate.html", "plots/03_evaluate",
                                                        "metrics/03_evaluate.json", "metrics/details/03_evaluate.json"}
    s = scratch_project(project, "03_evaluate")
    assert s == project.resolve() / "scratch" / "03_evaluate"
    assert (s / "models").is_symlink() and (s / "models" / "best.keras").read_text() == "model"
    assert (s / "metrics" / "02_train.json").read_text() == "upstream"  # other stages' results: the real ones
    assert not (s / "metrics").is_symlink() and not (s / "metrics" / "03_evaluate.json").exists()
    assert not (s / "metrics" / "details" / "03_evaluate.json").exists() and not (s / "plots" / "03_evaluate").exists()
    assert (s / "plots" / "02_train").is_symlink()
    # what the stage writes there stays there
    (s / "plots" / "03_evaluate").mkdir()
    (s / "plots" / "03_evaluate" / "roc.csv").write_text("explored")
    (s / "metrics" / "03_evaluate.json").write_text("explored")
    assert (project / "metrics" / "03_evaluate.json").read_text() == "committed"
    assert (project / "plots" / "03_evaluate" / "roc.csv").read_text() == "committed plot"
    # a second run starts fresh, and removing the scratch folder never touches the real files
    s2 = scratch_project(project, "03_evaluate")
    assert not (s2 / "metrics" / "03_evaluate.json").exists()
    assert (project / "models" / "best.keras").read_text() == "model"


def test_a_stage_not_in_the_pipeline_is_a_clear_error(project):
    with pytest.raises(InputError, match="no stage runs notebooks/99_x.py"):
        scratch_project(project, "99_x")


def test_for_stage_moves_a_run_by_hand_into_scratch_and_stage_params_reads_params_yaml(project, monkeypatch):
    monkeypatch.chdir(project / "notebooks")
    assert ProjectPaths.for_stage("03_evaluate", pipeline_run=True).root == project.resolve()
    assert os.getcwd() == str(project / "notebooks")
    paths = ProjectPaths.for_stage("03_evaluate", pipeline_run=False)
    assert paths.root == project.resolve() / "scratch" / "03_evaluate" and os.getcwd() == str(paths.root)
    got = stage_params("base", "evaluate", "crosssim")  # found through the mirror's params.yaml
    assert got == {"base": {"seed": 7}, "evaluate": {"fpr_target": 0.03}, "crosssim": {}}
