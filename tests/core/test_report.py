import json
import numpy as np
import pytest

from blobhelpers.core.report import header_markdown, strip_remote_scripts, versions


def test_remote_scripts_are_removed_local_kept():
    html = ('<html><script src="https://cdn.example/mathjax.js"></script>'
            '<script type="module">const m = (await import("https://cdn.example/mermaid.mjs")).default;</script>'
            '<link rel="stylesheet" href="https://fonts.example/css">'
            '<script>var local = 1;</script><img src="data:image/png;base64,AAAA"></html>')
    out = strip_remote_scripts(html)
    assert "https://" not in out
    assert "var local = 1" in out and "data:image/png" in out


def test_header_lists_parameters_and_versions():
    md = header_markdown("T", {"base": {"seed": 3}, "simulate": {"n_frames": 5, "nested": {"a": 1}}},
                         ["base", "simulate"])
    assert "<code>base.seed</code></td><td><code>3</code>" in md
    assert "<code>simulate.nested.a</code></td><td><code>1</code>" in md
    assert md.startswith('<details class="bh-provenance"') and md.endswith("</details>")
    v = versions()
    assert "numpy" in v and "blobhelpers" in v and "python" in v
    assert "<td>numpy</td>" in md


def test_versions_name_the_os_and_architecture_not_the_kernel_build():
    import platform

    v = versions()
    assert v["platform"] == f"{platform.system()} {platform.machine()}"
    assert platform.release() not in " ".join(v.values())


def test_widget_outputs_and_state_are_dropped():
    import nbformat

    from blobhelpers.core.report import clean_for_report

    c = nbformat.v4.new_code_cell("for _ in tqdm(x): pass")
    c.outputs = [nbformat.v4.new_output("display_data", data={
        "application/vnd.jupyter.widget-view+json": {"model_id": "3f2a9c", "version_major": 2},
        "text/plain": "classify:  40%|####      | 2/5 [00:01<00:02,  1.9it/s]"}),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    nb = nbformat.v4.new_notebook(cells=[c], metadata={"widgets": {"state": {"3f2a9c": {}}}})
    dropped = clean_for_report(nb)
    assert dropped["widgets"] == 1
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream"]
    assert "widgets" not in nb.metadata


def test_code_commit_ignores_output_commits_and_flags_code_edits(tmp_path):
    import subprocess

    from blobhelpers.core.report import code_commit

    def git(*a):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git("add", "params.yaml")
    git("commit", "-qm", "code")
    first = git("rev-parse", "--short", "HEAD")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.html").write_text("x")
    git("add", "reports")
    git("commit", "-qm", "results")
    assert code_commit(tmp_path) == first  # committing outputs does not relabel the reports
    (tmp_path / "params.yaml").write_text("a: 2\n")
    assert code_commit(tmp_path) == first + " (with uncommitted changes)"
    assert code_commit(tmp_path / "reports") == first + " (with uncommitted changes)"


def test_a_stage_report_is_labelled_with_its_own_code(monkeypatch):
    """Stage labels follow the stage's files: a commit elsewhere must not relabel a report DVC keeps."""
    from blobhelpers.core import report

    files = report.stage_files("notebooks/13_svm_simulate.py")
    assert files[0] == "notebooks/13_svm_simulate.py" and "blobhelpers/core/report.py" in files
    assert not any(f.startswith("blobhelpers/blob/") for f in files)  # the SVM wing does not run the blob code
    seen = {}
    monkeypatch.setattr(report, "code_commit", lambda root=None, paths=None: seen.setdefault("paths", paths) and "abc")
    monkeypatch.setenv(report.NOTEBOOK_ENV, "notebooks/13_svm_simulate.py")
    assert report.versions()["code commit"] == "abc" and seen["paths"] == files


def test_ordered_map_keeps_order_and_draws_items_in_the_calling_thread():
    import threading
    import time

    from blobhelpers.core.parallel import default_workers, ordered_map

    main = threading.get_ident()
    drawn = []

    def items():
        rng = np.random.default_rng(5)
        for k in range(12):
            drawn.append(threading.get_ident())
            yield k, float(rng.random())

    def slow_first(item):  # later items finish first; results must still come in order
        k, v = item
        time.sleep(0.02 if k % 3 == 0 else 0.0)
        return k, v * 2, threading.get_ident()

    out = list(ordered_map(slow_first, items(), workers=3))
    rng = np.random.default_rng(5)
    assert [(k, v) for k, v, _ in out] == [(k, 2 * float(rng.random())) for k in range(12)]
    assert set(drawn) == {main}  # the generator (and its random numbers) stays in this thread
    assert len({t for _, _, t in out} - {main}) >= 2  # the calls ran in worker threads
    assert [r[:2] for r in ordered_map(slow_first, items(), workers=1)] == [(k, v) for k, v, _ in out]

    def boom(k):
        if k == 4:
            raise ValueError("item 4 is bad")
        return k

    seen = []
    with pytest.raises(ValueError, match="item 4"):
        for k in ordered_map(boom, range(8), workers=2):
            seen.append(k)
    assert seen == [0, 1, 2, 3]
    assert default_workers(limit=1) == 1


def test_workers_from_the_environment(monkeypatch):
    from blobhelpers.core.parallel import default_workers

    monkeypatch.setenv("BLOBHELPERS_WORKERS", "1")
    assert default_workers() == 1
    monkeypatch.setenv("BLOBHELPERS_WORKERS", "two")
    with pytest.raises(ValueError, match="BLOBHELPERS_WORKERS"):
        default_workers()


def _figure_png(kind: str) -> bytes:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    if kind == "noise":
        im = ax.imshow(np.random.default_rng(1).normal(size=(500, 700)), cmap="gray")
        fig.colorbar(im)
    else:
        x = np.linspace(0, 10, 200)
        for k in range(6):
            ax.plot(x, np.sin(x + k), label=f"curve {k}")
        ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_large_noise_images_become_jpeg_line_plots_stay_png():
    import base64
    import io

    import nbformat
    from PIL import Image

    from blobhelpers.core.report import compress_images

    noise_raw, plot_raw = _figure_png("noise"), _figure_png("plot")
    noise, plot = base64.b64encode(noise_raw).decode(), base64.b64encode(plot_raw).decode()
    tiny = base64.b64encode(_png_bytes(np.full((50, 70, 3), 255, np.uint8))).decode()  # under 20 kB: untouched
    c = nbformat.v4.new_code_cell("")
    c.outputs = [nbformat.v4.new_output("display_data", data={"image/png": noise, "text/plain": "<Figure>"}),
                 nbformat.v4.new_output("display_data", data={"image/png": plot}),
                 nbformat.v4.new_output("display_data", data={"image/png": tiny})]
    nb = nbformat.v4.new_notebook(cells=[c])
    assert len(noise_raw) > 100_000
    assert compress_images(nb, limit=100_000) == 1
    first, second, third = nb.cells[0].outputs
    assert "image/jpeg" in first["data"] and "image/png" not in first["data"]
    assert len(first["data"]["image/jpeg"]) < len(noise) / 2
    # the line plot stays a PNG (a 256-colour palette): fewer bytes, the same picture to the eye
    new = base64.b64decode(second["data"]["image/png"])
    assert len(new) < len(plot_raw)
    a = np.asarray(Image.open(io.BytesIO(plot_raw)).convert("RGB"), float)
    b = np.asarray(Image.open(io.BytesIO(new)).convert("RGB"), float)
    assert a.shape == b.shape and np.abs(a - b).mean() < 2.0
    assert third["data"]["image/png"] == tiny
    again = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
    again.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/png": noise})]
    compress_images(again, limit=100_000)
    assert again.cells[0].outputs[0]["data"]["image/jpeg"] == first["data"]["image/jpeg"]  # deterministic


def _png_bytes(arr) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_tables_read_as_a_person_expects():
    import pandas as pd

    from blobhelpers.core.tables import frame_html

    df = pd.DataFrame({"n": [2000.0, 500.0], "auc": [0.970505, float("nan")], "by detector": [{"wfc": 49}, None]})
    html = frame_html(df, missing={"auc": "n/a: no positives"})
    assert "<td class=\"num\">2000</td>" in html and "2000.0" not in html
    assert "0.9705" in html and "n/a: no positives" in html and "NaN" not in html and "nan" not in html
    assert "wfc: 49" in html and "{" not in html
    assert "<th>n</th>" in html and "<th></th>" not in html  # no unnamed index column
    named = frame_html(pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="model")))
    assert "<th>model</th>" in named and "<td>a</td>" in named
    long = frame_html(pd.DataFrame({"i": range(300)}))
    assert long.count("<tr>") == 301 and "rows" not in long  # no truncation


def test_verdict_box_reads_the_metrics_files(tmp_path):
    from blobhelpers.blob.stages.monitor import CARD
    from blobhelpers.core.verdicts import verdict_box_html

    (tmp_path / "details").mkdir()
    (tmp_path / "04_monitor.json").write_text(json.dumps({
        "detection_deeper_3pct.rate": 0.5, "false_alarm_days_per_100_quiet": 0.0, "median_loc_error_px": 0.5,
        "model": "m"}))
    (tmp_path / "details" / "04_monitor.json").write_text(json.dumps({
        "detection_deeper_3pct": {"k": 5, "n": 10, "rate": 0.5, "lo": 0.237, "hi": 0.763},
        "false_alarm_days": {"k": 0, "n": 107, "lo": 0.0, "hi": 0.0347}, "campaign": {"n_quiet_days": 107}}))
    html = verdict_box_html(CARD, tmp_path)
    assert "own simulator (in-distribution)" in html
    assert "5/10" in html and "0.237-0.763" in html and "not met" in html  # 0.5 < 0.80
    assert "0/107" in html and "0-3.47" in html
    assert "Targets met: 3 of 4" in html  # localisation, false-alarm days and their upper bound
    assert verdict_box_html(CARD, tmp_path / "none") == ""


def test_row_numbers_of_a_filtered_table_are_not_shown():
    import pandas as pd

    from blobhelpers.core.tables import frame_html

    df = pd.DataFrame({"depth": [0.1, 0.3, 0.2], "id": [7, 8, 9]}).sort_values("depth", ascending=False)
    html = frame_html(df.iloc[:2])  # index 1, 2: row numbers of the unsorted table
    assert "<th>depth</th><th>id</th>" in html and html.count("<td") == 4
    labels = frame_html(pd.DataFrame({"v": [1]}, index=["train"]))
    assert "<td>train</td>" in labels  # labels are kept
