"""Reports: a tiny notebook through run_notebook (the installed kernel) comes out clean and stable;
the index page and its stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from blobhelpers.blob.stages import evaluate, train
from blobhelpers.core.headlines import headline
from blobhelpers.core.index import collect, index_table, report_title
from blobhelpers.core.report import clean_for_report, notebook_parameters, relative_paths, run_notebook

ROOT = Path(__file__).resolve().parents[2]

TINY = '''# ---
# jupyter:
#   kernelspec:
#     display_name: blobhelpers
#     language: python
#     name: blobhelpers
# ---

# %% [markdown]
# # Tiny report

# %% tags=["parameters"]
base = {"seed": 0}

# %%
import sys
from blobhelpers.core.paths import project_root
from blobhelpers.core.report import show_header

show_header("Tiny report", {"base": base}, ["base"])
root = project_root()
print("seed is", base["seed"], "| other injected:", "other" in globals())
print("wrote", root / "plots" / "tiny.csv")
print("a warning on stderr", file=sys.stderr)

# %%
root / "plots" / "tiny.csv"
'''

STDERR_BOX = re.compile(r"<div[^>]*data-mime-type=[\"']application/vnd\.jupyter\.stderr")


@pytest.fixture(scope="module")
def tiny_reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    src = tmp / "tiny.py"
    src.write_text(TINY)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"base": {"seed": 3}, "other": {"a": 1}}))
    htmls = [run_notebook(src, params, tmp / f"tiny{i}.html", tmp / "build" / "tiny.ipynb", cwd=tmp)
             for i in (1, 2)]
    return tmp, [h.read_text() for h in htmls]


def test_report_has_no_machine_paths_no_stderr_box_one_title(tiny_reports):
    tmp, (html, _) = tiny_reports
    for path in {str(ROOT), str(ROOT.resolve()), str(tmp), str(Path.home())}:
        assert path not in html, f"absolute path {path} in the report"
    assert "PosixPath" not in html and " at 0x" not in html
    assert not STDERR_BOX.search(html) and "a warning on stderr" not in html
    assert len(re.findall(r"<h1\b", html)) == 1 and "<title>Tiny report</title>" in html
    assert "Generated" not in html and "ipykernel_launcher" not in html
    assert "wrote ./plots/tiny.csv" in html


def test_report_keeps_parameters_and_commit_and_injects_only_declared(tiny_reports):
    tmp, (html, _) = tiny_reports
    assert "seed is 3 | other injected: False" in html  # base injected, `other` not declared
    assert "base.seed" in html and "code commit" in html and "numpy" in html
    executed = nbformat.read(tmp / "build" / "tiny.ipynb", as_version=4)
    stderr = [o for c in executed.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert stderr, "the executed notebook keeps stderr (only the HTML leaves it out)"
    log = (tmp / "build" / "tiny.stderr.log").read_text()
    assert "without encryption" not in log  # the kernel talks over IPC


def test_report_is_identical_on_rerun(tiny_reports):
    _, (first, second) = tiny_reports
    assert first == second


def test_console_lines(tmp_path, capsys):
    src = tmp_path / "t.py"
    src.write_text(TINY.replace("# %% tags=[\"parameters\"]\nbase = {\"seed\": 0}\n", "# %%\nbase = {'seed': 1}\n"))
    params = tmp_path / "p.yaml"
    params.write_text("base: {seed: 5}\n")
    run_notebook(src, params, tmp_path / "t.html", tmp_path / "t.ipynb", cwd=tmp_path)
    out = capsys.readouterr().out
    assert re.search(r"\[report\] t: started", out)
    assert re.search(r"\[report\] t: done in \d+ s, CPU \d+ s = \d+\.\d cores -> ", out)
    assert "seed is 1" in (tmp_path / "t.html").read_text()  # no parameters cell: nothing injected


def test_done_line_counts_the_kernels_cpu(tmp_path, capsys):
    """The CPU in the done line is the kernel's (a child process), not only the runner's."""
    src = tmp_path / "busy.py"
    src.write_text("# %%\nimport time\nt = time.process_time()\nwhile time.process_time() - t < 3.0:\n    pass\n")
    params = tmp_path / "p.yaml"
    params.write_text("base: {seed: 5}\n")
    run_notebook(src, params, tmp_path / "b.html", tmp_path / "b.ipynb", cwd=tmp_path)
    out = capsys.readouterr().out
    m = re.search(r"\[report\] busy: done in (\d+) s, CPU (\d+) s = ", out)
    assert m, out
    assert int(m.group(2)) >= 3  # the kernel's busy loop alone is 3 s of CPU


def test_notebook_parameters_and_cleaning():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%matplotlib inline\nsvm = {}\nx: int = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("y")])
    assert notebook_parameters(nb) == ["svm", "x"]
    assert notebook_parameters(nbformat.v4.new_notebook()) is None
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "[PosixPath('/a'), PosixPath('/b')]"}),
                           nbformat.v4.new_output("stream", name="stdout", text="20/20 - 7s - 372ms/step - loss: 0.69\n"),
                           nbformat.v4.new_output("error", ename="E", evalue="real error", traceback=[])]
    assert clean_for_report(nb) == {"stderr": 0, "reprs": 1}
    assert [o.output_type for o in nb.cells[1].outputs] == ["stream", "error"]  # errors are never hidden
    assert nb.cells[1].outputs[0].text == "20/20 - loss: 0.69\n"
    assert [c.id for c in nb.cells] == ["cell-0", "cell-1"]
    assert relative_paths("/x/proj/a and /x/projects", "/x/proj") == "./a and /x/projects"


def test_index_lists_every_report_with_metrics_and_verdict(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "reports" / "03_evaluate.html").write_text("<title>Notebook</title><h1>Stage 03 — eval</h1>")
    (tmp_path / "reports" / "99_new.html").write_text("<h1>New</h1>")
    (tmp_path / "reports" / "index.html").write_text("<h1>Index</h1>")
    (tmp_path / "metrics" / "03_evaluate.json").write_text(json.dumps(
        {"best": "b", "b_test_auc": 0.96, "b_tval_tpr": 0.9, "b_tval_fpr": 0.05, "stage_seconds": 99.0}))
    entries = collect(tmp_path / "reports", tmp_path / "metrics", [evaluate.CARD, train.CARD])
    assert [e.stem for e in entries] == ["03_evaluate", "99_new"]
    e = entries[0]
    assert e.title == "Stage 03 — eval" and e.report == "03_evaluate.html"
    assert dict(e.headline)["b_test_auc"] == 0.96 and "stage_seconds" not in dict(e.headline)
    assert e.verdict.startswith("b on held-out days: test AUC 0.96")
    assert entries[1].verdict == "no metrics."
    table = index_table(entries)
    assert '<a href="03_evaluate.html">' in table and '<a href="99_new.html">' in table
    assert evaluate.CARD.sentence({"verdict": "all good"}) == "all good"
    assert headline(train.CARD.headlines, {"best": "m", "m_val_auc": 0.9, "x_val_auc": 0.5, "m_train_seconds": 3}) == \
        [("best", "m"), ("m_val_auc", 0.9), ("x_val_auc", 0.5)]
    assert report_title("<p>none</p>", "fallback") == "fallback"


def test_index_stage_depends_on_every_report_and_metrics_file():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages)[-1] == "index", "the index is the last stage"
    deps = set(stages["index"]["deps"])
    for name, st in stages.items():
        if name == "index":
            continue
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in st.get("outs", []) + st.get("metrics", [])]
        for o in outs:
            if o.startswith("reports/") or o.startswith("metrics/"):
                assert o in deps, f"the index stage links {o} (stage {name}) but does not depend on it"
