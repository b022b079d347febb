"""Report lint: each check fires on a small bad report, and stays quiet on what a clean report holds."""

from __future__ import annotations

import nbformat
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.core.reportlint import CHECKS, NO_FIGURE_TAG, Problem, lint_html, lint_notebook, lint_reports, main

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

# What nbconvert's lab template puts around the content: CSS whose comments name http URLs, a
# local MathJax configuration script, pilcrow anchor links in the headings.
HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><title>Stage 99 — tiny</title>
<style type="text/css">
/* colours from https://github.com/material-components/material-components-web */
.jp-icon { background-image: url(data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=); }
</style>
<script type="text/x-mathjax-config">MathJax.Hub.Config({tex2jax: {inlineMath: [['$','$']]}});</script>
</head><body class="jp-Notebook"><main>
"""
TAIL = "\n</main></body></html>\n"


def page(body: str) -> str:
    return HEAD + body + TAIL


def h(level: int, title: str) -> str:
    anchor = title.replace(" ", "-")
    return f'<h{level} id="{anchor}">{title}<a class="anchor-link" href="#{anchor}">¶</a></h{level}>\n'


def markdown_cell(html: str) -> str:
    return ('<div class="jp-Cell jp-MarkdownCell jp-Notebook-cell"><div class="jp-RenderedHTMLCommon '
            f'jp-RenderedMarkdown jp-MarkdownOutput" data-mime-type="text/markdown">\n{html}</div></div>\n')


def output_cell(html: str) -> str:
    return ('<div class="jp-Cell jp-CodeCell jp-Notebook-cell jp-mod-noInput"><div class="jp-OutputArea">'
            f'<div class="jp-OutputArea-child">\n{html}</div></div></div>\n')


def generated_markdown(html: str) -> str:
    """What ``display(Markdown(...))`` gives: rendered markdown in a code cell's output area."""
    return output_cell('<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-OutputArea-output" '
                       f'data-mime-type="text/markdown">\n{html}</div>')


def stdout(text: str) -> str:
    return output_cell(f'<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain"><pre>{text}</pre></div>')


def table(header, rows) -> str:
    head = "".join(f"<th>{c}</th>" for c in ["", *header])
    body = "".join("<tr><th>{}</th>{}</tr>\n".format(i, "".join(f"<td>{c}</td>" for c in r)) for i, r in enumerate(rows))
    return f'<table border="1" class="dataframe"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n'


CLEAN = page(
    markdown_cell(h(1, "Stage 99 tiny") + "<p>Read the training in <a href='./02_train.html'>stage 02</a> and "
                  "<a href='index.html#Stages'>the index</a>; the catalogue has 1000 rows and we kept 3 columns.</p>"
                  "<p>The alert file looks like this:</p>"
                  '<pre><code>{"model": "blobnet", "threshold": 0.3}</code></pre>'
                  "<p>Files are under <code>~/data</code> and <code>./plots</code>; x/tmp/y is relative.</p>")
    + generated_markdown("<p><strong>Parameters</strong></p>"
                         "<table><tr><th>parameter</th><th>value</th></tr>"
                         "<tr><td><code>train.sgd_learning_rate</code></td><td><code>None</code></td></tr></table>")
    + markdown_cell(h(2, "Results") + h(3, "Detection"))
    + output_cell(table(["model", "recall", "precision", "note", "n"],
                        [["blobnet", "1.0", "0.0", "n/a: no positives", "2000"],
                         ["isr2021", "1.0", "1.0", "None seen", "17"]]))
    + markdown_cell(h(3, "Figures"))
    + output_cell(f'<div class="jp-RenderedImage"><img alt="No description has been provided for this image" src="{PNG}"/></div>')
    + markdown_cell(h(2, "Details"))
    + output_cell("<details><summary>more</summary><p>text</p></details>")
    + stdout("trained 3 models in 24 epochs; dtype of the tiles is float32")
)


def checks(problems):
    return [p.check for p in problems]


def lint_page(tmp_path, body: str, name: str = "99_tiny.html", **kw):
    path = tmp_path / name
    path.write_text(page(body))
    return lint_html(path, **kw)


def test_clean_report_has_no_problem(tmp_path):
    path = tmp_path / "99_tiny.html"
    path.write_text(CLEAN)
    assert lint_html(path) == []
    assert lint_html(CLEAN) == []  # the text itself, not a path


def test_problem_reads_as_one_line():
    p = Problem("reports/x.html", "nan_in_table", "line 3: table cell shows 'NaN'", "NaN")
    assert str(p) == "reports/x.html: nan_in_table: line 3: table cell shows 'NaN' -- 'NaN'"
    assert set(CHECKS) >= {"empty_section", "raw_repr", "nan_in_table", "machine_path", "external_url", "size",
                           "float_count", "no_image"}


# -- empty_section -------------------------------------------------------------------------------------

def test_empty_section_before_a_heading_of_the_same_level(tmp_path):
    problems = lint_page(tmp_path, markdown_cell(h(1, "Title") + "<p>intro</p>" + h(2, "Training") + h(2, "Histories")
                                                 + "<p>two curves</p>"))
    assert checks(problems) == ["empty_section"]
    assert "'Training'" in problems[0].message and "next h2" in problems[0].message
    assert "¶" not in problems[0].message and problems[0].file.endswith("99_tiny.html")


def test_empty_section_at_the_end_and_one_that_holds_only_empty_subsections(tmp_path):
    body = markdown_cell(h(1, "Title") + "<p>intro</p>" + h(2, "Models") + h(3, "isr2021") + h(3, "blobnet"))
    problems = lint_page(tmp_path, body)
    assert checks(problems) == ["empty_section"] * 3
    assert [p.excerpt for p in problems] == ["Models", "isr2021", "blobnet"]
    assert "end of the report" in problems[-1].message


def test_a_heading_followed_by_content_or_a_subsection_with_content_is_not_empty(tmp_path):
    body = markdown_cell(h(1, "Title") + h(2, "A") + h(3, "A.1") + "<p>text</p>" + h(2, "B")
                         + f'<img src="{PNG}"/>' + h(2, "C") + "<table><tr><td>1</td></tr></table>"
                         + h(2, "D") + "<svg><path d='M0 0'/></svg>")
    assert lint_page(tmp_path, body) == []


# -- raw_repr ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, what", [
    ("misalignments missed; by detector: {'wfc': 49, 'acs': 3}", "dict"),
    ('{\n "model": "blobnet",\n "threshold": 0.3\n}', "dict"),
    ("[{'name': 'a'}, {'name': 'b'}]", "dict"),
    ("[5 rows x 3 columns]", "rows x columns"),
    ("73 rows × 11 columns", "rows x columns"),
    ("&lt;blobhelpers.Foo object at 0x7f3a2b1c&gt;", "object repr"),
    ("wrote PosixPath('plots/a.csv')", "Path repr"),
    ("scores: array([0.1, 0.2])", "numpy array"),
    ("Name: n, dtype: int64", "dtype"),
    ("&lt;Figure size 640x480 with 1 Axes&gt;", "figure repr"),
])
def test_raw_repr(tmp_path, text, what):
    problems = lint_page(tmp_path, markdown_cell(h(1, "T")) + stdout(text))
    assert checks(problems) == ["raw_repr"], problems
    assert what in problems[0].message and problems[0].excerpt


def test_raw_repr_in_generated_markdown_is_flagged_but_author_code_blocks_are_not(tmp_path):
    generated = generated_markdown("<p>the inner loop chose <code>{'C': 7}</code></p>")
    assert checks(lint_page(tmp_path, markdown_cell(h(1, "T")) + generated)) == ["raw_repr"]
    written = markdown_cell(h(1, "T") + "<p>the model file holds <code>{'C': 7}</code></p>")
    assert lint_page(tmp_path, written) == []


def test_prose_about_rows_and_columns_is_not_a_pandas_footer(tmp_path):
    body = markdown_cell(h(1, "T") + "<p>1000 rows of the catalogue, 12 columns each; 5 rows x columns.</p>")
    assert lint_page(tmp_path, body) == []


# -- nan_in_table --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["nan", "NaN", "None", "&lt;NA&gt;", "NaT", " NaN "])
def test_nan_in_table(tmp_path, cell):
    problems = lint_page(tmp_path, markdown_cell(h(1, "T")) + output_cell(table(["auc"], [["0.91"], [cell]])))
    assert checks(problems) == ["nan_in_table"]
    assert problems[0].excerpt.strip() in {"nan", "NaN", "None", "<NA>", "NaT"}
    assert "table cell shows" in problems[0].message and "line " in problems[0].message


def test_text_that_merely_mentions_nan_is_not_a_nan_cell(tmp_path):
    body = markdown_cell(h(1, "T")) + output_cell(table(["note"], [["n/a: no positives"], ["NaN columns masked"],
                                                                   ["None seen"]]))
    assert lint_page(tmp_path, body) == []


# -- machine_path --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, where", [
    (stdout("wrote /home/alice/blobhelpers/plots/a.csv"), "the text"),
    (stdout("kernel log in /tmp/bh-kernel-x/k.log"), "the text"),
    (stdout("see /work/main/models/best.keras"), "the text"),
    (stdout("loaded C:\\Users\\bob\\data.fits"), "the text"),
    (stdout("warning from .venv/lib/python3.12/site-packages/keras/x.py"), "the text"),
    ('<p><a href="file:///Users/carol/reports/02_train.html">stage 02</a></p>', "an attribute"),
])
def test_machine_path(tmp_path, body, where):
    problems = lint_page(tmp_path, markdown_cell(h(1, "T")) + body)
    assert checks(problems) == ["machine_path"], problems
    assert f"in {where}" in problems[0].message


# -- external_url --------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, excerpt", [
    ('<p><a href="https://github.com/x/y">source</a></p>', "https://github.com/x/y"),
    ('<img src="http://example.org/a.png"/>', "http://example.org/a.png"),
    ('<div style="background: url(\'https://cdn.example.org/bg.png\')">x</div>', "https://cdn.example.org/bg.png"),
    ('<link rel="stylesheet" href="//fonts.example.org/a.css"/>', "//fonts.example.org/a.css"),
    ("<style>@import url(https://fonts.example.org/css);</style>", "https://fonts.example.org/css"),
    ('<script type="module">import mermaid from "https://cdn.example.org/mermaid.mjs";</script>',
     "https://cdn.example.org/mermaid.mjs"),
    ('<script src="require.js"></script>', "require.js"),
])
def test_external_url(tmp_path, body, excerpt):
    problems = lint_page(tmp_path, markdown_cell(h(1, "T") + "<p>text</p>") + body)
    assert checks(problems) == ["external_url"], problems
    assert problems[0].excerpt == excerpt and "outside itself" in problems[0].message


def test_external_url_allow_list(tmp_path):
    body = markdown_cell(h(1, "T") + '<p><a href="https://doi.org/10.1/x">paper</a></p>')
    assert checks(lint_page(tmp_path, body)) == ["external_url"]
    assert lint_page(tmp_path, body, allow_urls=("https://doi.org/",)) == []


# -- size ----------------------------------------------------------------------------------------------

def test_size_over_budget(tmp_path):
    body = markdown_cell(h(1, "T") + f'<img src="{PNG}"/>')
    problems = lint_page(tmp_path, body, budget_bytes=500)
    assert checks(problems) == ["size"]
    assert "over the budget of 500 bytes" in problems[0].message
    assert lint_page(tmp_path, body, budget_bytes=100_000) == []


def test_lint_reports_checks_each_report_and_the_total(tmp_path):
    (tmp_path / "01_a.html").write_text(CLEAN)
    (tmp_path / "02_b.html").write_text(CLEAN)
    assert lint_reports(tmp_path) == []
    problems = lint_reports(tmp_path, total_budget_bytes=len(CLEAN.encode()) + 10)
    assert checks(problems) == ["size"] and problems[0].file == str(tmp_path)
    assert "2 reports total" in problems[0].message
    with pytest.raises(InputError):
        lint_reports(tmp_path / "missing")


# -- float_count ---------------------------------------------------------------------------------------

def test_float_count(tmp_path):
    t = table(["subframes", "recall", "auc"], [["2000.0", "1.0", "0.91"], ["500.0", "0.0", "0.88"]])
    problems = lint_page(tmp_path, markdown_cell(h(1, "T")) + output_cell(t))
    assert checks(problems) == ["float_count"]
    assert "'subframes'" in problems[0].message and problems[0].excerpt == "2000.0, 500.0"


def test_a_clean_notebook_rendered_by_nbconvert_is_clean(tmp_path):
    """The lab template's own CSS, scripts and anchors raise nothing (rendered as run_notebook does)."""
    from nbconvert import HTMLExporter

    from blobhelpers.core.report import strip_remote_scripts

    code = _code("print(...)", [
        nbformat.v4.new_output("stream", name="stdout", text="trained 3 models\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PNG.split(",")[1], "text/plain": "<Figure>"}),
        nbformat.v4.new_output("execute_result", execution_count=1, data={
            "text/html": table(["model", "auc"], [["blobnet", "0.91"]]), "text/plain": "..."}),
    ])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Stage 99\n\nIntro.\n\n## Results"), code])
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    assert lint_html(strip_remote_scripts(body)) == []
    bad = strip_remote_scripts(body).replace("trained 3 models", "trained {'blobnet': 3}")
    assert checks(lint_html(bad)) == ["raw_repr"]


# -- no_image (executed notebooks) ---------------------------------------------------------------------

def _notebook(tmp_path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    return path


def _code(source, outputs=(), tags=()):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
    cell.outputs = list(outputs)
    return cell


def test_no_image(tmp_path):
    png = nbformat.v4.new_output("display_data", data={"image/png": PNG.split(",")[1], "text/plain": "<Figure>"})
    text = nbformat.v4.new_output("stream", name="stdout", text="no data\n")
    path = _notebook(tmp_path, [
        _code("fig, ax = plt.subplots()\nax.plot([1, 2])\nsave_figure(fig, PLOTS / 'a.png')", [text]),  # flagged
        _code("fig, ax = plt.subplots()\nax.plot([1, 2])\nplt.show()", [png]),  # shows its figure
        _code("save_figure(fig, PLOTS / 'b.png')", tags=[NO_FIGURE_TAG]),  # exempt
        _code("# plt.show()\nshow_header('T', params, ['base'])\nplt.close('all')"),  # no plotting call
        nbformat.v4.new_markdown_cell("plt.plot(x)"),  # not code
    ])
    problems = lint_notebook(path)
    assert checks(problems) == ["no_image"]
    assert "cell 0" in problems[0].message and NO_FIGURE_TAG in problems[0].message
    assert "plt.subplots(" in problems[0].excerpt


def test_no_image_accepts_an_html_img(tmp_path):
    html = nbformat.v4.new_output("display_data", data={"text/html": f'<img src="{PNG}"/>'})
    assert lint_notebook(_notebook(tmp_path, [_code("plot_days(days)", [html])])) == []
    assert checks(lint_notebook(_notebook(tmp_path, [_code("plot_days(days)")]))) == ["no_image"]


# -- command line --------------------------------------------------------------------------------------

def test_cli_exit_codes(tmp_path, capsys):
    clean = tmp_path / "01_clean.html"
    clean.write_text(CLEAN)
    bad = tmp_path / "02_bad.html"
    bad.write_text(page(markdown_cell(h(1, "T") + h(1, "U") + "<p>x</p>")))
    assert main([str(clean)]) == 0
    assert capsys.readouterr().out == ""
    assert main([str(clean), str(bad), "--budget", "1000000"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{bad}: empty_section: line ")
    assert "heading h1 'T' has nothing under it before the next h1" in out[0]
    assert main([str(clean), "--budget", "100"]) == 1
    assert ": size: " in capsys.readouterr().out
    assert main([str(tmp_path)]) == 1  # a folder: its reports, and their total
    capsys.readouterr()
    assert main([str(tmp_path / "missing.html")]) == 2
    assert "missing.html" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.ipynb")]) == 2


def test_cli_lints_notebooks(tmp_path, capsys):
    path = _notebook(tmp_path, [_code("plt.imshow(img)")])
    assert main([str(path)]) == 1
    assert capsys.readouterr().out.startswith(f"{path}: no_image: cell 0 calls a plotting function")


def test_committed_reports_pass_the_lint():
    """What `bash tasks.sh pipeline` committed reads as a report should: every check of the lint, sizes included."""
    from pathlib import Path

    from blobhelpers.core.reportlint import lint_reports

    problems = lint_reports(Path(__file__).resolve().parents[2] / "reports")
    assert not problems, "\n".join(map(str, problems))
