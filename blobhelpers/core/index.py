"""``reports/index.html``: every stage's report with a few headline metrics and a one-line verdict.

The ``index`` stage (``notebooks/90_index.py``) calls :func:`collect` and :func:`index_table`.
A stage is a report ``reports/NN_name.html``; its metrics are ``metrics/NN_name.json``. The
headline numbers are the keys named in :data:`HEADLINES` that the file has (``{best}`` stands
for the stage's ``best`` / ``model`` entry), else its first few numeric entries; the verdict is a
``verdict`` entry of the metrics when a stage writes one, else the rule in :data:`VERDICTS`, else
a neutral line. Missing keys never fail the index: stages rename metrics, the index follows.
"""

from __future__ import annotations

import html as _html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .headlines import HEADLINES, VOLATILE, _flat, headline  # noqa: F401 (re-exported)

__all__ = ["StageEntry", "collect", "headline", "verdict", "index_table", "report_title", "fmt"]

def fmt(v) -> str:
    """A metric value for a person: 3 significant digits, ints as they are.

    >>> [fmt(x) for x in (0.98765, 12, 1234.5, True, "blobnet", None, float("nan"))]
    ['0.988', '12', '1.23e+03', 'yes', 'blobnet', '—', '—']
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _g(m: dict, *keys):
    for k in keys:
        if k in m and m[k] is not None:
            return m[k]
    raise KeyError(keys[0])


def _v_data(m):
    auc = _g(m, "max_pixel_auc_val")
    ok = abs(auc - 0.5) < 0.1
    return (f"{_g(m, 'n_train')} / {_g(m, 'n_val')} / {_g(m, 'n_test')} train/val/test subframes; the brightest "
            f"pixel {'does not give' if ok else 'GIVES'} the label away (AUC {fmt(auc)}).")


def _v_train(m):
    best = _g(m, "best")
    aucs = {k[: -len("_val_auc")]: v for k, v in m.items() if k.endswith("_val_auc")}
    chance = [k for k, v in aucs.items() if v < 0.6]
    tail = f"; at chance (val AUC < 0.6): {', '.join(chance)}" if chance else ""
    return f"best on validation (own simulator, in-distribution): {best} (val AUC {fmt(aucs.get(best))}){tail}."


def _v_eval(m):
    b = _g(m, "best")
    return (f"{b} on held-out days: test AUC {fmt(_g(m, f'{b}_test_auc'))}, TPR {fmt(_g(m, f'{b}_tval_tpr'))} at "
            f"FPR {fmt(_g(m, f'{b}_tval_fpr'))} (validation-chosen threshold; own simulator, in-distribution).")


def _v_monitor(m):
    return (f"own simulator (in-distribution): false alarms {fmt(_g(m, 'false_alarm_days_per_100_quiet'))} per 100 "
            f"quiet days, first-day detection of >3 % blobs {fmt(m.get('detection_deeper_3pct.rate'))}; median localisation "
            f"error {fmt(_g(m, 'median_loc_error_px'))} px (model {_g(m, 'model')}).")


def _v_crosssim(m):
    return (f"independent simulator: classify flags {fmt(_g(m, 'xsim_cnn_image_fpr'))} of blob-free images "
            f"(matched filter {fmt(_g(m, 'xsim_mf_image_fpr'))}), localises {fmt(_g(m, 'xsim_cnn_localised'))} of S/N>=3 "
            f"blobs; monitor finds {fmt(_g(m, 'xsim_monitor_found'))} on day 1 (targets 0.05 / 0.95 / 0.95).")


def _v_isr_recipe(m):
    met = _g(m, "isr_recipe_isr2021_val_tpr") >= 0.89 and _g(m, "isr_recipe_isr2021_val_tnr") >= 0.83
    x_auc, own_auc = _g(m, "isr_recipe_isr2021_xsim_auc"), m.get("isr_recipe_isr2021_isrtest_auc")
    tail = ""
    if own_auc is not None and x_auc < own_auc - 0.1:
        tail = (" So the published rates measure finding pasted cutouts among backgrounds of the same images, "
                "not new blobs in new difference images.")
    return (f"ISR recipe (pasted cutouts): isr2021 validation TPR {fmt(_g(m, 'isr_recipe_isr2021_val_tpr'))}, "
            f"TNR {fmt(_g(m, 'isr_recipe_isr2021_val_tnr'))} (published 0.94 / 0.88; targets 0.89 / 0.83 "
            f"{'met' if met else 'not met'}); on the independent cross-simulator's tiles the same model's AUC is "
            f"{fmt(x_auc)}" + (f" (ISR-style test crops: {fmt(own_auc)})" if own_auc is not None else "") + "." + tail)


def _v_svm_prep(m):
    return (f"{_g(m, 'n_real_misaligned')} real misaligned vs {_g(m, 'n_real_aligned')} real aligned visits; "
            f"rms 0 in {fmt(_g(m, 'frac_rms0_real_misaligned'))} of the misaligned.")


def _v_svm_models(m):
    b = _g(m, "best")
    if "nested_selection_nested_real_misaligned" in m:  # the whole procedure (selection + threshold), out of sample
        rec, fa = m["nested_selection_nested_real_misaligned"], m["nested_selection_nested_false_alarm_real_aligned"]
        auc = m.get("nested_selection_roc_auc_real")
        return (f"deployed {b}; the selection procedure out of sample: real ROC-AUC {fmt(auc)}, real recall "
                f"{fmt(rec)} at false alarm {fmt(fa)} — targets 0.88 / 0.55 "
                f"{'reached' if rec >= 0.55 and (auc or 0) >= 0.88 else 'not reached'}.")
    rec = _g(m, f"{b}_nested_real_misaligned")
    return (f"{b}: real recall {fmt(rec)} at false alarm {fmt(_g(m, f'{b}_nested_false_alarm_real_aligned'))} "
            f"(nested) — target 0.80 {'reached' if rec >= 0.8 else 'not reached'}.")


def _v_svm_screen(m):
    return f"{fmt(_g(m, 'flagged_all'))} of {_g(m, 'n_screened')} visits flagged (model {_g(m, 'model')})."


def _v_svm_sim(m):
    return (f"{fmt(_g(m, 'frac_corrupted_labelled_1'))} of {_g(m, 'n_corrupted')} corruptions measured misaligned "
            f"({_g(m, 'n_visits')} simulated visits).")


def _v_svm_images(m):
    tab, img = _g(m, "tabular_roc_auc"), max(_g(m, "cnn2d_roc_auc"), _g(m, "stacked_roc_auc"))
    return (f"ROC-AUC tables {fmt(tab)} vs best with images {fmt(img)}: images "
            f"{'add ranking power' if img > tab + 0.01 else 'do not add ranking power'} here.")


VERDICTS = {"01_data_prep": _v_data, "02_train": _v_train, "03_evaluate": _v_eval, "04_monitor": _v_monitor,
            "05_crosssim": _v_crosssim, "06_isr_recipe": _v_isr_recipe,
            "10_svm_prep": _v_svm_prep, "11_svm_models": _v_svm_models, "12_svm_screen": _v_svm_screen,
            "13_svm_simulate": _v_svm_sim, "14_svm_images": _v_svm_images}


def verdict(stem: str, metrics: dict) -> str:
    """One line on what the stage's numbers say (a ``verdict`` entry of the metrics wins).

    >>> verdict("11_svm_models", {"best": "lr", "lr_nested_real_misaligned": 0.35,
    ...                           "lr_nested_false_alarm_real_aligned": 0.049})
    'lr: real recall 0.35 at false alarm 0.049 (nested) — target 0.80 not reached.'
    >>> verdict("11_svm_models", {"best": "lr"})
    'ran; see the report.'
    """
    if isinstance(metrics.get("verdict"), str):
        return metrics["verdict"]
    rule = VERDICTS.get(stem)
    if rule is not None:
        try:
            return rule(_flat(metrics))
        except (KeyError, TypeError, ValueError):
            pass
    return "ran; see the report." if metrics else "no metrics."


_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)


def report_title(html_text: str, default: str = "") -> str:
    """The report's title: its first ``<h1>``, else its ``<title>``.

    >>> report_title('<title>x</title><h1 id="a">Stage 03 — eval<a class="anchor-link">¶</a></h1>')
    'Stage 03 — eval'
    """
    for rx in (_H1, _TITLE):
        m = rx.search(html_text)
        if m:
            text = _html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).replace("¶", "").strip()
            if text and text != "Notebook":
                return text
    return default


@dataclass
class StageEntry:
    stem: str
    title: str
    report: str  # relative to the index page
    metrics_file: str | None
    headline: list = field(default_factory=list)
    verdict: str = ""


def collect(reports: str | Path, metrics: str | Path, exclude: tuple[str, ...] = ("index",)) -> list[StageEntry]:
    """One entry per ``reports/*.html`` (sorted by name), with its ``metrics/<same name>.json``."""
    reports, metrics = Path(reports), Path(metrics)
    out = []
    for rep in sorted(reports.glob("*.html")):
        if rep.stem in exclude:
            continue
        mfile = metrics / f"{rep.stem}.json"
        dfile = metrics / "details" / f"{rep.stem}.json"  # everything the stage measured (write_metrics)
        m = json.loads(mfile.read_text()) if mfile.is_file() else {}
        if dfile.is_file():
            m = {**json.loads(dfile.read_text()), **m}
        out.append(StageEntry(stem=rep.stem, title=report_title(rep.read_text(errors="replace"), rep.stem),
                              report=rep.name, metrics_file=mfile.name if mfile.is_file() else None,
                              headline=headline(rep.stem, m), verdict=verdict(rep.stem, m)))
    return out


def index_table(entries: list[StageEntry]) -> str:
    """An HTML table: stage (linked report), headline metrics, verdict."""
    e = _html.escape
    rows = []
    for s in entries:
        mets = "<br>".join(f"<code>{e(k)}</code> {e(fmt(v))}" for k, v in s.headline) or "—"
        rows.append(f'<tr><td><a href="{e(s.report)}"><b>{e(s.stem)}</b></a><br>{e(s.title)}</td>'
                    f"<td>{mets}</td><td>{e(s.verdict)}</td></tr>")
    return ('<table class="bh-index"><thead><tr><th>stage (report)</th><th>headline metrics '
            "(<code>dvc metrics show</code>; details in <code>metrics/details/</code>)</th><th>verdict</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
