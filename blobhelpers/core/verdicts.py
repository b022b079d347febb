"""The verdict box at the top of every stage report, built from the stage's metrics files.

A reader opens a report to learn whether the stage did what it set out to do. The box answers
that before anything else: which data the numbers come from (own simulator = in-distribution,
the independent cross-simulator, real data, or in-sample), the one-line verdict
(:func:`blobhelpers.core.index.verdict`), and each checked number with its 95 % interval, its
count (k/n), its target and whether the target is met. Nothing in it is typed: every value is read
from ``metrics/<stage>.json`` and ``metrics/details/<stage>.json`` when the report is rendered
(:func:`blobhelpers.core.report.run_notebook`), so the box always agrees with the metrics files.

:data:`CHECKS` declares, per stage, the data label and the checks. A check names a metric key, a
target (``>=`` or ``<=`` a value, or none) and how to find its count: keys ``<key>.k/.n/.lo/.hi``
(the :func:`blobhelpers.core.stats.rate` shape), ``<key>_k/_n/_lo/_hi``, or an explicit ``n`` key;
the interval is the 95 % Wilson interval of k/n when the file does not hold one.
"""

from __future__ import annotations

import html as _html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .headlines import _flat
from .stats import wilson

__all__ = ["Check", "CHECKS", "DATA_LABELS", "check_rows", "load_metrics", "verdict_box_html"]

#: What the data labels mean (shown in the box's legend and the article's claims table).
DATA_LABELS = {
    "own": "own simulator (in-distribution)",
    "independent": "independent cross-simulator",
    "real": "real data",
    "in-sample": "in-sample (the data the model was built on)",
    "sim-svm": "simulated SVM products",
}


@dataclass(frozen=True)
class Check:
    """One checked number of a stage (see the module docstring)."""

    label: str
    key: str
    op: str | None = None  # ">=", "<=" or None (reported, no target)
    target: float | None = None
    n_key: str | None = None  # explicit key of the number of cases
    per: float = 1.0  # shown as value * per (e.g. 100 for "per 100 days")
    unit: str = ""


#: Per stage: (data label key, [checks]). Targets are the project's documented ones.
CHECKS: dict[str, tuple[str, list[Check]]] = {
    "01_data_prep": ("own", [
        Check("brightest-pixel AUC on validation (0.5 = gives nothing away)", "max_pixel_auc_val"),
        Check("training / validation / test subframes", "n_train"),
    ]),
    "02_train": ("own", [
        Check("best model's validation AUC", "{best}_val_auc"),
        Check("best model's validation TPR at FPR 0.03", "{best}_val_tpr_at_fpr0.03"),
    ]),
    "03_evaluate": ("own", [
        Check("best model's test AUC (held-out days)", "{best}_test_auc"),
        Check("TPR at the validation-chosen threshold", "{best}_tval_tpr", n_key="n_test_pos"),
        Check("FPR at the validation-chosen threshold", "{best}_tval_fpr", "<=", 0.03),
    ]),
    "04_monitor": ("own", [
        Check("new blobs deeper than 3 % alerted on day 1", "detection_deeper_3pct.rate", ">=", 0.95),
        Check("all new blobs alerted on day 1", "detection_all.rate"),
        Check("new blobs ever alerted", "detection_eventually.rate"),
        Check("false-alarm days per 100 quiet days", "false_alarm_days_per_100_quiet", "<=", 2.0,
              n_key="campaign.n_quiet_days"),
        Check("median localisation error", "median_loc_error_px", "<=", 1.0, unit=" px"),
    ]),
    "05_crosssim": ("independent", [
        Check("classify: blob-free images flagged", "xsim_cnn_image_fpr", "<=", 0.05),
        Check("classify: new blobs (S/N >= 3) localised", "xsim_cnn_localised", ">=", 0.95),
        Check("classify: tile FPR", "xsim_cnn_tile_fpr", "<=", 0.01),
        Check("monitor: new blobs found on day 1", "xsim_monitor_found", ">=", 0.95),
        Check("monitor: blob-free series with an alert", "xsim_monitor_false_alarm_series", "<=", 0.02),
    ]),
    "06_isr_recipe": ("own", [
        Check("isr2021, ISR recipe: validation TPR (published 0.94)", "isr_recipe_isr2021_val_tpr", ">=", 0.89,
              n_key="isr_recipe_isr2021_val_n_pos"),
        Check("isr2021, ISR recipe: validation TNR (published 0.88)", "isr_recipe_isr2021_val_tnr", ">=", 0.83,
              n_key="isr_recipe_isr2021_val_n_neg"),
        Check("isr2021, ISR recipe: AUC on cross-simulator tiles (independent)", "isr_recipe_isr2021_xsim_auc"),
        Check("blobnet, project recipe: AUC on cross-simulator tiles (independent)", "project_recipe_blobnet_xsim_auc"),
    ]),
    "10_svm_prep": ("real", [
        Check("real misaligned visits", "n_real_misaligned"),
        Check("real aligned visits", "n_real_aligned"),
        Check("misaligned visits with rms 0", "frac_rms0_real_misaligned", n_key="n_real_misaligned"),
    ]),
    "11_svm_models": ("real", [
        Check("selection procedure, out of sample: real ROC-AUC", "nested_selection_roc_auc_real", ">=", 0.88),
        Check("real recall (nested; mean count over 3 repeats)", "nested_selection_nested_real_misaligned", ">=", 0.55,
              n_key="n_real_misaligned"),
        Check("false alarms on real aligned visits (nested)", "nested_selection_nested_false_alarm_real_aligned",
              "<=", 0.05, n_key="n_real_aligned"),
        Check("default gradient boosting, same folds: real ROC-AUC", "gb_default_roc_auc_real"),
    ]),
    "12_svm_screen": ("real", [
        Check("unlabelled visits flagged", "flagged_all", n_key="n_screened"),
    ]),
    "13_svm_simulate": ("sim-svm", [
        Check("corruptions measured misaligned", "frac_corrupted_labelled_1", n_key="n_corrupted"),
    ]),
    "14_svm_images": ("sim-svm", [
        Check("tables only: ROC-AUC", "tabular_roc_auc"),
        Check("stacked (tables + images): ROC-AUC", "stacked_roc_auc"),
        Check("2-D CNN on the renderings: ROC-AUC", "cnn2d_roc_auc"),
        Check("spacekit's ensemble, same folds: ROC-AUC", "spacekit_roc_auc"),
    ]),
}


def load_metrics(stem: str, metrics_dir: str | Path) -> dict:
    """The stage's headline and detail metrics, flattened (``a.b`` keys); {} when it has none."""
    metrics_dir = Path(metrics_dir)
    out: dict = {}
    for f in (metrics_dir / "details" / f"{stem}.json", metrics_dir / f"{stem}.json"):
        if f.is_file():
            out.update(_flat(json.loads(f.read_text())))
    return out


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _count(m: dict, key: str, value: float, n_key: str | None):
    """(k, n, lo, hi) where the metrics give them (or Wilson from k/n), else Nones."""
    base = key[: -len(".rate")] if key.endswith(".rate") else key
    k = n = lo = hi = None
    for sep in (".", "_"):
        k = k if k is not None else _num(m.get(f"{base}{sep}k"))
        n = n if n is not None else _num(m.get(f"{base}{sep}n"))
        lo = lo if lo is not None else _num(m.get(f"{base}{sep}lo"))
        hi = hi if hi is not None else _num(m.get(f"{base}{sep}hi"))
    if n is None and n_key:
        n = _num(m.get(n_key))
    if n is not None and k is None and 0 <= value <= 1:
        k = round(value * n)  # the files round rates (e.g. 0.0008 of 1222): the count is an integer
    if n and k is not None and (lo is None or hi is None) and 0 <= value <= 1:
        lo, hi = wilson(int(round(k)), int(n))
    return k, n, lo, hi


def _fmt(v: float, per: float = 1.0) -> str:
    v = v * per
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.3g}"


def _interval(lo, hi, per: float = 1.0) -> str:
    """``"0.550-0.737"`` (3 decimals for rates, 3 significant digits otherwise); "" when unknown.

    >>> _interval(0.00443, 0.129), _interval(0, 3.47), _interval(None, 1)
    ('0.004-0.129', '0-3.47', '')
    """
    if lo is None or hi is None:
        return ""
    lo, hi = lo * per, hi * per
    if 0 <= lo <= 1 and 0 <= hi <= 1 and per == 1.0:
        return f"{lo:.3f}-{hi:.3f}"
    return f"{_fmt(lo)}-{_fmt(hi)}"


def check_rows(stem: str, m: dict) -> list[dict]:
    """The stage's checks evaluated on flattened metrics *m*: one dict per check found in *m*.

    >>> rows = check_rows("06_isr_recipe", {"isr_recipe_isr2021_val_tpr": 0.982, "isr_recipe_isr2021_val_n_pos": 500})
    >>> r = rows[0]; (r["value"], r["count"], r["target"], r["met"])
    ('0.982', '491/500', '>= 0.89', True)
    >>> r["interval"]
    '0.966-0.991'
    """
    label_key, checks = CHECKS.get(stem, ("", []))
    best = str(m.get("best", m.get("model", "")))
    rows = []
    for c in checks:
        key = c.key.replace("{best}", best)
        v = _num(m.get(key))
        if v is None:
            continue
        k, n, lo, hi = _count(m, key, v, c.n_key)
        per = 100.0 if key.endswith("per_100_quiet") else c.per
        if key.endswith("per_100_quiet") and n:  # a rate per 100 days: its interval from the day count
            k = round(v / 100 * n, 3)
            lo, hi = (_num(m.get("false_alarm_days.lo")), _num(m.get("false_alarm_days.hi")))
            lo, hi = (lo * 100 if lo is not None else None, hi * 100 if hi is not None else None)
            per = 1.0
        met = None
        if c.op == ">=":
            met = v >= c.target
        elif c.op == "<=":
            met = v <= c.target
        count = ""
        if k is not None and n:
            count = f"{_fmt(k)}/{_fmt(n)}"
        rows.append({
            "label": c.label, "key": key, "value": _fmt(v, per) + c.unit,
            "interval": _interval(lo, hi, per),
            "count": count, "target": f"{c.op} {_fmt(c.target)}{c.unit}" if c.op else "",
            "met": met,
        })
    return rows


def verdict_box_html(stem: str, metrics_dir: str | Path) -> str:
    """The HTML verdict box of stage *stem* ("" when the stage has no metrics file)."""
    from .index import verdict

    m = load_metrics(stem, metrics_dir)
    if not m:
        return ""
    e = _html.escape
    label_key = CHECKS.get(stem, ("", []))[0]
    data = DATA_LABELS.get(label_key, "")
    rows = check_rows(stem, m)
    met_word = {True: '<span class="bh-met">met</span>', False: '<span class="bh-notmet">not met</span>',
                None: ""}
    table = ""
    if rows:
        cols = [("measure", "label"), ("value", "value"), ("95 % interval", "interval"), ("k/n", "count"),
                ("target", "target"), ("", "met")]
        cols = [c for c in cols if c[1] in ("label", "value") or any(r[c[1]] not in ("", None) for r in rows)]

        def cell(r, key):
            if key == "met":
                return f"<td>{met_word[r['met']]}</td>"
            if key == "label":
                return f"<td>{e(r['label'])}</td>"
            text = f"<b>{e(r[key])}</b>" if key == "value" else e(r[key])
            return f'<td class="num">{text}</td>'

        head = "".join(f"<th>{e(h)}</th>" for h, _ in cols)
        body = "".join("<tr>" + "".join(cell(r, k) for _, k in cols) + "</tr>" for r in rows)
        table = f'<table class="bh-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    n_met = sum(r["met"] is True for r in rows)
    n_target = sum(r["met"] is not None for r in rows)
    score = f" Targets met: {n_met} of {n_target}." if n_target else ""
    return (f'<section class="bh-verdict" id="verdict"><h2>Verdict</h2>'
            + (f'<p class="bh-data">Data: <b>{e(data)}</b></p>' if data else "")
            + f"<p>{e(verdict(stem, m))}{e(score)}</p>{table}"
            + f'<p class="bh-src">Read from <a href="../metrics/{e(stem)}.json">metrics/{e(stem)}.json</a> and '
            f'<a href="../metrics/details/{e(stem)}.json">metrics/details/{e(stem)}.json</a> when this report '
            "was rendered.</p></section>")
