"""The article: WFC3 ISR 2021-08 rebuilt, page by page from the pipeline's own outputs.

``reports/index.html`` (the ``index`` stage, ``notebooks/90_index.py``) follows the ISR's
structure: a claims table that sets each published statement beside the rebuilt number, then the
ISR's figures in its order, each rebuilt from this pipeline's data with the published caption's
facts beside it, then what this repository adds. Nothing in it is typed by hand:

* every number comes from ``metrics/*.json``, ``metrics/details/*.json`` or a stage's
  ``plots/`` table (:func:`claims`);
* every figure is a PNG a stage saved under ``plots/`` (:data:`FIGURES`), embedded (large noise
  images as JPEG) so the page opens offline;
* under each figure and claim: the stage, its notebook, a short hash of the parameters it read
  (linked to their values in the stage report) and the last commit of the stage's code
  (:func:`provenance`).

The module sits above both wings: it reads their files, it imports neither.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import html as _html
import json
from dataclasses import dataclass
from pathlib import Path

from blobhelpers.core.errors import InputError, run_guarded
from blobhelpers.core.paths import project_root, write_text
from blobhelpers.core.report import code_commit, compact_image, notebook_parameters, stage_files
from blobhelpers.core.stagecard import DATA_LABELS
from blobhelpers.core.stats import wilson
from blobhelpers.core.verdicts import load_metrics

__all__ = ["CITATION", "Claim", "claims", "claims_table_html", "FIGURES", "Figure", "figure_html", "provenance",
           "params_hash", "readme_results_table"]

CITATION = ("Dauphin, F., Medina, J. V., & McCullough, P. R. 2021, <i>Classifying Blobs in WFC3/IR Images with "
            "a Convolutional Neural Network</i>, Instrument Science Report WFC3 2021-08 (Space Telescope Science "
            "Institute)")


@dataclass
class Claim:
    """One row of the claims table."""
    claim: str
    published: str
    rebuilt: str
    interval: str  # "lo-hi (k/n)" or ""
    data: str  # key of DATA_LABELS
    status: str  # reproduced | exceeded | not met | measured | not reproduced
    stage: str  # the stage whose files hold the number


def _status(rate: float, lo: float, hi: float, published: float, higher_is_better: bool = True) -> str:
    """reproduced (published inside the interval), exceeded (interval beyond it), or not met.

    >>> _status(0.982, 0.966, 0.991, 0.94), _status(0.9, 0.85, 0.95, 0.94), _status(0.7, 0.6, 0.8, 0.94)
    ('exceeded', 'reproduced', 'not met')
    """
    if lo <= published <= hi:
        return "reproduced"
    better = lo > published if higher_is_better else hi < published
    return "exceeded" if better else "not met"


def _rate_text(k: float, n: float) -> tuple[str, float, float]:
    lo, hi = wilson(int(round(k)), int(n))
    kk = f"{k:g}" if float(k).is_integer() else f"{k:.1f}"
    return f"{lo:.3f}-{hi:.3f} ({kk}/{int(n)})", lo, hi


def _csv_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def claims(root: str | Path) -> list[Claim]:
    """The claims table's rows, computed from the project's metrics and plots files under *root*.

    A claim whose numbers are missing (a stage not run, a key renamed) is left out, never guessed.
    """
    root = Path(root)
    M = {s: load_metrics(s, root / "metrics") for s in ("01_data_prep", "02_train", "03_evaluate", "04_monitor",
                                                         "05_crosssim", "06_isr_recipe", "11_svm_models",
                                                         "14_svm_images")}
    out: list[Claim] = []

    def add(fn):
        try:
            c = fn()
        except (KeyError, TypeError, ValueError, ZeroDivisionError, StopIteration):
            return
        if c is not None:
            out.append(c)

    r = M["06_isr_recipe"]

    def cm(which, pub, n_key, label):
        def f():
            v, n = r[f"isr_recipe_isr2021_val_{which}"], r[n_key]
            text, lo, hi = _rate_text(v * n, n)
            return Claim(f"Fig. 8: validation {label} of the ISR's CNN trained on the ISR's recipe", f"{pub:.2f}",
                         f"{v:.3f}", text, "own", _status(v, lo, hi, pub), "06_isr_recipe")
        return f

    add(cm("tpr", 0.94, "isr_recipe_isr2021_val_n_pos", "TPR (blobs found)"))
    add(cm("tnr", 0.88, "isr_recipe_isr2021_val_n_neg", "TNR (blob-free subframes passed)"))

    def params():
        n = M["02_train"]["isr2021_n_params"]
        return Claim("Fig. 7: the ISR's CNN has about 0.53 M parameters", "~530,000", f"{int(n):,}", "", "own",
                     "reproduced" if abs(n - 530_000) / 530_000 < 0.02 else "not met", "02_train")

    add(params)

    def clip():
        d = M["01_data_prep"]
        lo, hi = d["clip_z_low_median"], d["clip_z_high_median"]
        ok = abs(lo + 3.0) < 0.4 and abs(hi - 3.0) < 0.4
        return Claim("Figs. 3-5: clipping at 0.5 x the zscale limits then z-scoring bounds values near +-3 "
                     "(published as the released processed cutouts)", "-3.04 / +2.96",
                     f"{lo:.2f} / +{hi:.2f} (median over difference images)", "", "own",
                     "reproduced" if ok else "not met", "01_data_prep")

    add(clip)

    def dips():
        rows = [x for x in _csv_rows(root / "plots" / "03_evaluate" / "strata.csv")
                if x["model"] == M["03_evaluate"]["best"] and x["group"] == "negatives"]
        dip = next(x for x in rows if ">=" in x["stratum"])
        other = next(x for x in rows if "<" in x["stratum"])
        fpr_d, n_d = 1 - float(dip["value"]), int(dip["n"])
        fpr_o, n_o = 1 - float(other["value"]), int(other["n"])
        seen = fpr_d > fpr_o
        return Claim("False positives are mostly dips (sub-pixel mis-registration residuals)", "stated, no number",
                     f"FPR {fpr_d:.3f} on dip negatives vs {fpr_o:.3f} on the others "
                     f"({M['03_evaluate']['best']}, dip-corrected differences)",
                     f"{round(fpr_d * n_d)}/{n_d} vs {round(fpr_o * n_o)}/{n_o}", "own",
                     "reproduced" if seen else "not reproduced: dips are corrected before the CNN", "03_evaluate")

    add(dips)

    def misses():
        rows = {(x["stratum"], x["bin"]): x for x in _csv_rows(root / "plots" / "04_monitor" / "detection_strata.csv")}
        fs, ty, ed = rows[("category", "faint_small")], rows[("category", "typical")], rows[("category", "edge")]

        def rt(x):
            return int(x["k"]) / int(x["n"])

        small_worse = rt(fs) < rt(ty)
        edge_worse = rt(ed) < rt(ty)
        status = ("reproduced" if small_worse and edge_worse else
                  "reproduced for small/faint, not for edge blobs" if small_worse else "not reproduced")
        return Claim("False negatives are small, faint or at the edge (daily monitor, first day)", "stated, no number",
                     f"alerted: faint/small {rt(fs):.2f}, edge {rt(ed):.2f}, typical {rt(ty):.2f}",
                     f"{fs['k']}/{fs['n']}, {ed['k']}/{ed['n']}, {ty['k']}/{ty['n']}", "own", status, "04_monitor")

    add(misses)

    def xsim_classify():
        x = M["05_crosssim"]
        n = x["xsim_cnn_localised_n"]
        text, lo, hi = _rate_text(round(x["xsim_cnn_localised"] * n), n)
        return Claim("Real test difference images perform comparably (classify on new data: new blobs with "
                     "S/N >= 3 localised)", "stated, no number", f"{x['xsim_cnn_localised']:.3f} (target 0.95)", text,
                     "independent", "measured" if lo < 0.95 <= hi or x["xsim_cnn_localised"] >= 0.95 else "not met",
                     "05_crosssim")

    add(xsim_classify)

    def xsim_fp():
        x = M["05_crosssim"]
        n = x["xsim_cnn_image_fpr_n"]
        text, lo, hi = _rate_text(round(x["xsim_cnn_image_fpr"] * n), n)
        return Claim("classify on new data: blob-free difference images flagged", "(not published)",
                     f"{x['xsim_cnn_image_fpr']:.3f} (target <= 0.05)", text, "independent",
                     "met" if x["xsim_cnn_image_fpr"] <= 0.05 else "not met", "05_crosssim")

    add(xsim_fp)

    def isr_on_new():
        return Claim("The ISR's recipe on new data: isr2021 (ISR recipe) ROC AUC on independent tiles; blobnet "
                     "(project recipe) beside it", "(not published)",
                     f"{r['isr_recipe_isr2021_xsim_auc']:.3f} vs {r['project_recipe_blobnet_xsim_auc']:.3f}", "",
                     "independent", "measured", "06_isr_recipe")

    add(isr_on_new)

    def monitor_det():
        m = M["04_monitor"]
        text, lo, hi = _rate_text(m["detection_deeper_3pct.k"], m["detection_deeper_3pct.n"])
        return Claim("Deployment plan: a daily check that flags new blobs (deeper than 3 %, first day)",
                     "planned, no number", f"{m['detection_deeper_3pct.rate']:.3f} (target 0.80)", text, "own",
                     "met" if m["detection_deeper_3pct.rate"] >= 0.80 else "not met", "04_monitor")

    add(monitor_det)

    def monitor_within3():
        m = M["04_monitor"]
        key = "detection_within_days.3.deeper"
        text, lo, hi = _rate_text(m[f"{key}.k"], m[f"{key}.n"])
        return Claim("Daily check with evidence accumulated over days: new blobs deeper than 3 % flagged within 3 days",
                     "planned, no number", f"{m[f'{key}.rate']:.3f} (target 0.95)", text, "own",
                     "met" if m[f"{key}.rate"] >= 0.95 else "not met", "04_monitor")

    add(monitor_within3)

    def monitor_fa():
        m = M["04_monitor"]
        k, n = m["false_alarm_days.k"], m["false_alarm_days.n"]
        return Claim("Daily check: false-alarm days per 100 quiet days", "planned, no number",
                     f"{m['false_alarm_days_per_100_quiet']:.1f} (target <= 2)",
                     f"{100 * m['false_alarm_days.lo']:.1f}-{100 * m['false_alarm_days.hi']:.1f} per 100 "
                     f"({int(k)}/{int(n)})", "own",
                     "met" if m["false_alarm_days_per_100_quiet"] <= 2 else "not met", "04_monitor")

    add(monitor_fa)

    def svm_nested():
        s = M["11_svm_models"]
        return Claim("SVM alignment: our model selection (nested CV) vs spacekit-style default gradient boosting, "
                     "real ROC-AUC", f"{s['gb_default_roc_auc_real']:.3f} (default, same folds)",
                     f"{s['nested_selection_roc_auc_real']:.3f} (target 0.88)",
                     f"{s['nested_selection_roc_auc_real_lo']:.3f}-{s['nested_selection_roc_auc_real_hi']:.3f}",
                     "real", ("exceeds the default" if s["nested_selection_roc_auc_real_lo"] > s["gb_default_roc_auc_real"]
                              else "above the default, inside its interval"
                              if s["nested_selection_roc_auc_real"] > s["gb_default_roc_auc_real"] else "not met")
                     + ("; target 0.88 met" if s["nested_selection_roc_auc_real"] >= 0.88 else "; target 0.88 not met"),
                     "11_svm_models")

    add(svm_nested)

    def svm_images():
        s = M["14_svm_images"]
        return Claim("SVM with images: spacekit's ensemble vs our tabular model on the same folds, ROC-AUC",
                     f"{s['spacekit_roc_auc']:.3f} (spacekit's ensemble, rebuilt)",
                     f"{s['tabular_roc_auc']:.3f} (tables), {s['stacked_roc_auc']:.3f} (stacked with images)", "",
                     "sim-svm", "exceeded" if s["tabular_roc_auc"] > s["spacekit_roc_auc"] else "not met",
                     "14_svm_images")

    add(svm_images)
    return out


def params_hash(root: str | Path, stem: str) -> tuple[str, list[str]]:
    """A short hash of the params.yaml sections notebook *stem* reads, and their names.

    The same sections with the same values give the same hash, on any machine.
    """
    import jupytext
    import yaml

    root = Path(root)
    sections = [s for s in (notebook_parameters(jupytext.read(root / "notebooks" / f"{stem}.py")) or [])]
    params = yaml.safe_load((root / "params.yaml").read_text()) or {}
    chosen = {s: params[s] for s in sections if s in params}
    digest = hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return digest, [s for s in sections if s in params]


def provenance(root: str | Path, stem: str) -> str:
    """HTML: the stage, its notebook, its parameters' hash (linked to their values) and its code commit."""
    return _provenance(str(Path(root).resolve()), stem)


@functools.lru_cache(maxsize=None)
def _provenance(root: str, stem: str) -> str:
    """:func:`provenance`, once per stage (several figures share a stage: one notebook read, one git call)."""
    root = Path(root)
    e = _html.escape
    digest, sections = params_hash(root, stem)
    nb = f"notebooks/{stem}.py"
    commit = code_commit(root, paths=stage_files(nb)) if (root / nb).is_file() else ""
    return (f'<span class="bh-prov">Stage <a href="{e(stem)}.html">{e(stem)}</a> · notebook '
            f'<a href="../{e(nb)}"><code>{e(nb)}</code></a> · parameters <a href="{e(stem)}.html#provenance">'
            f'<code>{e(digest)}</code></a> ({e(", ".join(sections))}) · code commit <code>{e(commit or "n/a")}</code>'
            "</span>")


STATUS_CLASS = {"reproduced": "bh-met", "exceeded": "bh-met", "met": "bh-met", "not met": "bh-notmet"}


def claims_table_html(rows: list[Claim], root: str | Path) -> str:
    """The claims table with a provenance line per stage."""
    e = _html.escape
    body = []
    for c in rows:
        cls = STATUS_CLASS.get(c.status, "")
        status = f'<span class="{cls}">{e(c.status)}</span>' if cls else e(c.status)
        body.append(f"<tr><td>{e(c.claim)}</td><td>{e(c.published)}</td><td><b>{e(c.rebuilt)}</b></td>"
                    f"<td>{e(c.interval)}</td><td>{e(DATA_LABELS.get(c.data, c.data))}</td><td>{status}</td>"
                    f'<td><a href="{e(c.stage)}.html">{e(c.stage)}</a></td></tr>')
    return ('<table class="bh-table bh-claims"><thead><tr><th>claim</th><th>published</th><th>rebuilt</th>'
            "<th>95 % interval (k/n)</th><th>data</th><th>status</th><th>stage</th></tr></thead><tbody>"
            + "".join(body) + "</tbody></table>")


@dataclass(frozen=True)
class Figure:
    """One figure of the article: a stage's saved PNG and what the ISR's caption says."""
    number: str
    title: str
    png: str  # relative to the project root
    stage: str
    isr: str  # the published caption's facts ("" beyond the ISR)
    rebuilt: str  # what the rebuilt figure shows (may use {metric} placeholders from the stage's metrics)


#: The ISR's figures in its order, then what this repository adds. Fig. 1 (the WFC3 optical path and the
#: CSM) is a diagram, not data: it is described, not rebuilt.
FIGURES: list[Figure] = [
    Figure("Fig. 2", "A blob map and a difference image", "plots/01_data_prep/fig2_frame_difference.png",
           "01_data_prep", "Left: the current blob map with every blob; right: the difference against the median "
           "of the preceding ~30 frames; known blobs circled.",
           "Left: a simulated CSM-monitor frame (its illumination, blobs circled); right: its difference image "
           "against the median of the previous 30 frames, new blobs circled in green."),
    Figure("Figs. 3-5", "Pixel distributions before and after clipping",
           "plots/01_data_prep/fig3_4_pixel_distributions.png", "01_data_prep",
           "Fig. 3: the unclipped distribution of a blob-free difference (outliers: reference pixels, bad pixels); "
           "Fig. 4: zoomed, with the clip thresholds 0.5 x zscale; Fig. 5: after clipping and z-scoring.",
           "Left: a difference image's distribution with the zscale limits and the 0.5 x zscale clip; right: after "
           "clipping and z-scoring (median clip at {clip_z_low_median:.2f} / {clip_z_high_median:.2f} z)."),
    Figure("Fig. 6", "Subframes before and after blobs are superimposed", "plots/01_data_prep/fig5_6_injection.png",
           "01_data_prep", "A 256 x 256 blob-free subframe before and after blobs are superimposed.",
           "Four 256 x 256 subframes before (top) and after (bottom) simulated blobs are added; "
           "{n_train} training, {n_val} validation and {n_test} test subframes in all."),
    Figure("Fig. 8", "The validation confusion matrix", "plots/06_isr_recipe/confusion_published_vs_rebuilt.png",
           "06_isr_recipe", "TN 0.88, FP 0.12, FN 0.056, TP 0.94 (0 = no blob, 1 = blob).",
           "Left: the published matrix; right: the ISR's CNN trained on the ISR's recipe, validation "
           "TPR {isr_recipe_isr2021_val_tpr:.3f} and TNR {isr_recipe_isr2021_val_tnr:.3f} of "
           "{isr_recipe_isr2021_val_n_pos} + {isr_recipe_isr2021_val_n_neg} subframes."),
    Figure("Fig. 9", "Saliency: where the model looks", "plots/03_evaluate/saliency_isr2021.png", "03_evaluate",
           "A subframe with five superimposed blobs beside its saliency map (input gradients); the blobs light up.",
           "The ISR's architecture on the project's test days: inputs (top), vanilla gradients and SmoothGrad of "
           "the blob log-odds; injected blobs circled."),
    Figure("Beyond 1", "The project's model: saliency", "plots/03_evaluate/saliency_blobnet.png", "03_evaluate", "",
           "blobnet (the project's model; test AUC {blobnet_test_auc:.3f}): the same panels."),
    Figure("Beyond 2", "The ISR's recipe, tested on data it never saw", "plots/06_isr_recipe/recipe_x_test_auc.png",
           "06_isr_recipe", "",
           "ROC AUC of two models trained on two recipes, on three test sets. The ISR recipe's model scores "
           "{isr_recipe_isr2021_isrtest_auc:.3f} on ISR-style crops but {isr_recipe_isr2021_xsim_auc:.3f} on the "
           "independent cross-simulator's tiles."),
    Figure("Beyond 3", "The daily monitor: detection by blob depth and size", "plots/04_monitor/detection_strata.png",
           "04_monitor", "", "First-day alerts on the regression campaign (own simulator) by depth, radius and "
           "category; {detection_deeper_3pct.k}/{detection_deeper_3pct.n} blobs deeper than 3 % alerted."),
    Figure("Beyond 4", "Detection on an independent simulator", "plots/05_crosssim/localised_by_snr.png",
           "05_crosssim", "", "New blobs localised by classify on the independent cross-simulator, by S/N."),
    Figure("Beyond 5", "SVM alignment: real misalignments ranked", "plots/11_svm_models/roc_pr.png", "11_svm_models",
           "", "ROC and precision-recall of the SVM models on real visits (nested, grouped CV); the selection "
           "procedure reaches real ROC-AUC {nested_selection_roc_auc_real:.3f}."),
]


def _fill(text: str, metrics: dict) -> str:
    """*text* with ``{key:fmt}`` placeholders from *metrics* (flattened keys may contain dots)."""
    out, i = [], 0
    while True:
        a = text.find("{", i)
        if a < 0:
            out.append(text[i:])
            return "".join(out)
        b = text.index("}", a)
        out.append(text[i:a])
        key, _, spec = text[a + 1:b].partition(":")
        v = metrics[key]
        if isinstance(v, float) and not spec and v.is_integer():
            v = int(v)
        out.append(format(v, spec))
        i = b + 1


def figure_html(fig: Figure, root: str | Path) -> str:
    """One figure block (image, caption with the ISR's facts beside the rebuilt ones, provenance); "" if
    its PNG or one of its numbers is missing."""
    root = Path(root)
    e = _html.escape
    path = root / fig.png
    if not path.is_file():
        return ""
    try:
        rebuilt = _fill(fig.rebuilt, load_metrics(fig.stage, root / "metrics"))
    except (KeyError, ValueError):
        return ""
    mime, raw = compact_image(path.read_bytes())
    data = base64.b64encode(raw).decode()
    isr = f"<br><b>ISR 2021-08:</b> {e(fig.isr)}" if fig.isr else ""
    anchor = fig.number.lower().replace(" ", "-").replace(".", "")
    return (f'<figure class="bh-fig" id="{e(anchor)}"><h3>{e(fig.number)}: {e(fig.title)}</h3>'
            f'<img alt="{e(fig.number)}: {e(fig.title)}" src="data:{mime};base64,{data}">'
            f"<figcaption><b>Rebuilt:</b> {e(rebuilt)}{isr}<br>{provenance(root, fig.stage)}</figcaption></figure>")


def readme_results_table(root: str | Path) -> str:
    """The README's headline results (Markdown), from the same claims as the article."""
    rows = ["| claim | published | rebuilt | 95 % interval (k/n) | data | status | report |",
            "|---|---|---|---|---|---|---|"]
    for c in claims(root):
        cells = [c.claim, c.published, f"**{c.rebuilt}**", c.interval or "-", DATA_LABELS.get(c.data, c.data),
                 c.status, f"[{c.stage}](reports/{c.stage}.html)"]
        rows.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(rows)


README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"


def readme_with_results(text: str, table: str) -> str:
    r"""*text* (a README) with the block between :data:`README_START` and :data:`README_END` set to *table*.

    >>> readme_with_results("a\n<!-- results:start -->\nold\n<!-- results:end -->\nb", "new")
    'a\n<!-- results:start -->\nnew\n<!-- results:end -->\nb'
    """
    a, b = text.find(README_START), text.find(README_END)
    if a < 0 or b < a:
        raise ValueError(f"no {README_START} ... {README_END} block")
    return text[: a + len(README_START)] + "\n" + table + "\n" + text[b:]


def main(argv=None) -> int:
    """``python -m blobhelpers.article [--check] README.md``: write (or check) the README's results block."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m blobhelpers.article",
                                description="the README's headline results, generated from metrics/ and plots/")
    p.add_argument("readme", type=Path, nargs="?", default=None)
    p.add_argument("--check", action="store_true", help="exit 1 if the README's block differs, write nothing")

    def _run(a):
        root = project_root()
        readme = a.readme or root / "README.md"
        try:
            text = readme.read_text()
            new = readme_with_results(text, readme_results_table(root))
        except (OSError, ValueError) as exc:
            raise InputError(f"{readme}: {exc}") from exc
        if new == text:
            return 0
        if a.check:
            print(f"{readme}: the results block differs from metrics/ (run: python -m blobhelpers.article)")
            return 1
        write_text(readme, new)
        print(f"{readme}: results block updated")
        return 0

    return run_guarded(_run, p.parse_args(argv), "python -m blobhelpers.article")


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
