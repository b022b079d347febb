"""The article (reports/index.html) and the README's results block: generated from metrics, never typed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from blobhelpers import article
from blobhelpers.article import claims, figure_html, readme_results_table, readme_with_results
from blobhelpers.core.report import compact_image

ROOT = Path(__file__).resolve().parents[1]


def _tree(tmp_path, tpr=0.982, tnr=0.982, n=500):
    (tmp_path / "metrics" / "details").mkdir(parents=True)
    (tmp_path / "metrics" / "06_isr_recipe.json").write_text(json.dumps({
        "isr_recipe_isr2021_val_tpr": tpr, "isr_recipe_isr2021_val_tnr": tnr,
        "isr_recipe_isr2021_val_n_pos": n, "isr_recipe_isr2021_val_n_neg": n}))
    (tmp_path / "metrics" / "02_train.json").write_text(json.dumps({"isr2021_n_params": 528098}))
    return tmp_path


def test_claims_status_follows_the_interval(tmp_path):
    rows = {c.claim.split(":")[1].split()[1]: c for c in claims(_tree(tmp_path, tpr=0.982, tnr=0.88))
            if c.stage == "06_isr_recipe"}
    assert rows["TPR"].status == "exceeded" and rows["TPR"].interval == "0.966-0.991 (491/500)"
    assert rows["TNR"].status == "reproduced"  # 0.88 inside its own interval
    assert rows["TPR"].data == "own"


def test_claims_not_met_and_missing_numbers_are_left_out(tmp_path):
    rows = claims(_tree(tmp_path, tpr=0.70, tnr=0.95, n=100))
    by = {c.claim.split(":")[1].split()[1]: c for c in rows if c.stage == "06_isr_recipe"}
    assert by["TPR"].status == "not met" and by["TNR"].status == "exceeded"
    # no metrics for stages 01, 03-05, 11, 14 in this tree: their claims are absent, not invented
    assert {c.stage for c in rows} == {"06_isr_recipe", "02_train"}


def test_readme_results_block_matches_the_metrics():
    text = (ROOT / "README.md").read_text()
    assert readme_with_results(text, readme_results_table(ROOT)) == text, \
        "README results differ from metrics/: run `python -m blobhelpers.article`"
    assert article.main(["--check"]) == 0


def test_readme_block_markers_are_required(tmp_path):
    with pytest.raises(ValueError, match="results:start"):
        readme_with_results("no block here", "x")
    bad = tmp_path / "README.md"
    bad.write_text("# no block\n")
    assert article.main([str(bad)]) == 2


def test_figure_embeds_the_stage_png_with_both_captions_and_provenance(tmp_path):
    from PIL import Image

    root = _tree(tmp_path)
    (root / "plots" / "06_isr_recipe").mkdir(parents=True)
    rng = np.random.default_rng(0)  # a noise image, re-encoded by the reports' own compact_image
    Image.fromarray(rng.integers(0, 255, (600, 900, 3), dtype=np.uint8)).save(
        root / "plots" / "06_isr_recipe" / "confusion_published_vs_rebuilt.png")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "06_isr_recipe.py").write_text("# %% tags=['parameters']\nbase = {}\n")
    (root / "params.yaml").write_text("base: {seed: 1}\nother: {a: 2}\n")
    fig = next(f for f in article.FIGURES if f.number == "Fig. 8")
    html = figure_html(fig, root)
    png = (root / "plots" / "06_isr_recipe" / "confusion_published_vs_rebuilt.png").read_bytes()
    mime, raw = compact_image(png)
    assert f"data:{mime};base64,{base64.b64encode(raw).decode()}" in html and len(raw) < len(png)
    assert "TN 0.88" in html  # the ISR's caption facts
    assert "TPR 0.982 and TNR 0.982 of 500 + 500 subframes" in html  # filled from the metrics file
    assert 'href="06_isr_recipe.html#provenance"' in html and "(base)" in html
    # the same parameters give the same hash; another value another one
    h1 = article.params_hash(root, "06_isr_recipe")
    (root / "params.yaml").write_text("base: {seed: 2}\nother: {a: 2}\n")
    assert article.params_hash(root, "06_isr_recipe")[0] != h1[0]
    # a figure whose PNG is missing is left out
    assert figure_html(next(f for f in article.FIGURES if f.number == "Fig. 2"), root) == ""
