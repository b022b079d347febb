"""Which numbers of each stage are its headline (``metrics/<stage>.json``, ``dvc metrics show``).

Kept apart from :mod:`blobhelpers.core.index` (the index page and its verdict sentences): every stage
writes its metrics through :func:`blobhelpers.core.report.write_metrics`, which needs these lists, so
they are code every stage runs; the wording of the index page is not.
"""

from __future__ import annotations

from fnmatch import fnmatch

__all__ = ["HEADLINES", "VOLATILE", "headline"]

#: Headline metric keys per stage (fnmatch patterns; ``{best}`` = the stage's best model).
HEADLINES: dict[str, list[str]] = {
    "01_data_prep": ["n_train", "n_val", "n_test", "n_difference_images", "max_pixel_auc_val",
                     "dip_dipole_registered"],
    "02_train": ["best", "{best}_val_auc", "{best}_val_tpr_at_fpr*", "{best}_val_threshold", "*_val_auc",
                 "*_dead_fc1"],
    "03_evaluate": ["best", "n_test", "{best}_test_auc", "{best}_tval_tpr", "{best}_tval_fpr",
                    "{best}_campaign_detection_rate", "{best}_campaign_false_alarm_rate", "*_test_auc"],
    "04_monitor": ["model", "detection_deeper_3pct.rate", "detection_all.rate", "false_alarm_days_per_100_quiet",
                   "false_alerts_per_100_days", "median_loc_error_px", "snr_min", "threshold", "neg_veto",
                   "campaign.n_days"],
    "05_crosssim": ["xsim_cnn_tile_tpr", "xsim_cnn_tile_fpr", "xsim_cnn_image_fpr", "xsim_mf_image_fpr",
                    "xsim_cnn_localised", "xsim_mf_localised", "xsim_monitor_found", "xsim_mf_found",
                    "xsim_monitor_false_alarm_series", "own_cnn_tile_tpr", "own_cnn_tile_fpr", "offset_change_pp"],
    "06_isr_recipe": ["isr_recipe_isr2021_val_tpr", "isr_recipe_isr2021_val_tnr", "isr_recipe_isr2021_val_n_pos",
                      "isr_recipe_isr2021_val_n_neg", "isr_recipe_isr2021_isrtest_auc", "isr_recipe_isr2021_xsim_auc",
                      "isr_recipe_blobnet_xsim_auc", "project_recipe_isr2021_xsim_auc",
                      "project_recipe_blobnet_xsim_auc", "probe_isr_recipe_isr2021_blank_square_flagged",
                      "anomaly_projtest_auc", "anomaly_xsim_auc"],
    "10_svm_prep": ["n_real_aligned", "n_real_misaligned", "n_synthetic_misaligned", "n_unlabelled",
                    "frac_rms0_real_misaligned", "frac_rms0_real_aligned"],
    "11_svm_models": ["best", "threshold", "nested_selection_roc_auc_real", "nested_selection_nested_real_misaligned",
                      "nested_selection_nested_false_alarm_real_aligned", "nested_selection_nested_synthetic",
                      "{best}_roc_auc_real", "{best}_nested_real_misaligned", "gb_default_roc_auc_real",
                      "gb_default_nested_real_misaligned"],
    "12_svm_screen": ["model", "n_screened", "flagged_all", "flagged_aligned_in_july",
                      "samples12_ours_correct", "samples12_spacekit_correct"],
    "13_svm_simulate": ["n_visits", "n_corrupted", "frac_corrupted_labelled_1", "frac_rms0_sim_misaligned",
                        "frac_rms0_real_misaligned"],
    "14_svm_images": ["n_products", "tabular_roc_auc", "cnn2d_roc_auc", "stacked_roc_auc", "spacekit_roc_auc",
                      "best_image_model"],
}

#: Keys never shown as headline numbers (timings and speeds vary from run to run).
VOLATILE = ("*seconds*", "*_per_s*", "*_s", "stage_*")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def headline(stem: str, metrics: dict, n: int = 6) -> list[tuple[str, object]]:
    """Up to *n* (key, value) headline metrics of stage *stem*.

    >>> headline("03_evaluate", {"best": "b", "b_test_auc": 0.9, "a_test_auc": 0.5, "stage_seconds": 3})
    [('best', 'b'), ('b_test_auc', 0.9), ('a_test_auc', 0.5)]
    >>> headline("99_new", {"stage_seconds": 3, "auc": 0.7, "name": "x", "n": 4})
    [('auc', 0.7), ('n', 4)]
    """
    flat = _flat(metrics)
    best = str(flat.get("best", flat.get("model", "")))
    out: dict[str, object] = {}
    for pat in HEADLINES.get(stem, []):
        pat = pat.replace("{best}", best)
        for k, v in flat.items():
            if fnmatch(k, pat) and k not in out and not any(fnmatch(k, x) for x in VOLATILE):
                out[k] = v
    if not out:  # an unknown stage: its first numeric entries
        out = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and not any(fnmatch(k, x) for x in VOLATILE)}
    return list(out.items())[:n]
