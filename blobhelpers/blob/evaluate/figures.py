"""Figures of the reports (matplotlib, non-interactive backend safe)."""

from __future__ import annotations

import numpy as np

from blobhelpers.blob.preprocess.scaling import zscale
from blobhelpers.core.plotting import figure_png, save_figure

__all__ = ["display_limits", "show_image", "campaign_overview", "frame_and_difference", "pixel_distributions",
           "injection_before_after", "real_vs_simulated_gallery", "dip_examples", "max_pixel_overlap",
           "save_figure", "figure_png"]


def display_limits(img: np.ndarray) -> tuple[float, float]:
    return zscale(np.where(np.isfinite(img), img, np.nanmedian(img)))


def show_image(ax, img, title=None, limits=None, cmap="gray"):
    lo, hi = limits if limits is not None else display_limits(img)
    im = ax.imshow(img, origin="lower", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _circles(ax, xs, ys, rs, color, lw=0.8, scale=2.0, ls="-"):
    from matplotlib.patches import Circle

    for x, y, r in zip(xs, ys, rs):
        ax.add_patch(Circle((x, y), scale * r + 3, fill=False, ec=color, lw=lw, ls=ls))


def campaign_overview(frames_truth, catalog, diff_table=None):
    """Sky level, mis-registration and new-blob events over the campaign; blob population."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 4, figsize=(16, 3.3))
    ft = frames_truth
    axs[0].plot(ft["index"], ft["sky_e"], ".-")
    axs[0].set(xlabel="frame", ylabel="sky (e-/px)", title="airglow level per frame")
    axs[1].plot(ft["index"], ft["shift_x"], ".-", label="x")
    axs[1].plot(ft["index"], ft["shift_y"], ".-", label="y")
    if diff_table is not None and len(diff_table):
        axs[1].plot(diff_table["frame_index"], diff_table["shift_x"].astype(float), "k+", label="measured x")
        axs[1].plot(diff_table["frame_index"], diff_table["shift_y"].astype(float), "kx", label="measured y")
    axs[1].set(xlabel="frame", ylabel="px", title="blob-pattern shift (truth) and measured")
    axs[1].legend(fontsize=7, ncol=2)
    new = catalog[catalog["appear_index"] >= 0]
    for cat, m in (("typical", "o"), ("faint_small", "s"), ("edge", "^")):
        sub = new[new["category"] == cat]
        axs[2].scatter(sub["appear_index"], sub["depth"], marker=m, label=f"{cat} ({len(sub)})")
    axs[2].set(xlabel="frame of appearance", ylabel="central depth", yscale="log", title="new blobs")
    axs[2].legend(fontsize=7)
    old = catalog[catalog["appear_index"] < 0]
    axs[3].scatter(old["radius"], old["depth"], s=8, c=(old["profile"] == "ring"), cmap="coolwarm")
    axs[3].set(xlabel="radius (px)", ylabel="central depth", yscale="log",
               title=f"existing blobs ({len(old)}; red = ring)")
    fig.tight_layout()
    return fig


def frame_and_difference(frame, diff, existing, natural, title_frame="frame", title_diff="difference"):
    """ISR Fig. 2-like: a frame with its blobs circled, and the difference with new blobs circled.

    *existing* and *natural* are arrays of (x, y, radius[, ...]) rows.
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(13.6, 6.5), layout="constrained")
    im = show_image(axs[0], frame, title_frame)
    fig.colorbar(im, ax=axs[0], shrink=0.8, pad=0.01, label="frame value")
    if len(existing):
        _circles(axs[0], existing[:, 0], existing[:, 1], existing[:, 2], "cyan", lw=0.6)
    im = show_image(axs[1], diff, title_diff)
    fig.colorbar(im, ax=axs[1], shrink=0.8, pad=0.01, label="difference")
    if len(existing):
        _circles(axs[1], existing[:, 0], existing[:, 1], existing[:, 2], "cyan", lw=0.4, ls=":")
    if len(natural):
        _circles(axs[1], natural[:, 0], natural[:, 1], natural[:, 2], "lime", lw=1.2, scale=2.5)
    return fig


def pixel_distributions(diff, scale_params, scaled):
    """ISR Fig. 3-4: unclipped pixel distribution with clip thresholds, and after scaling."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(13, 3.6))
    v = diff[np.isfinite(diff)].ravel()
    lo, hi = np.percentile(v, [0.01, 99.99])
    axs[0].hist(v, bins=400, range=(lo, hi), histtype="step", color="k")
    for z, c, lab in ((scale_params.z1, "C0", "zscale z1/z2"), (scale_params.z2, "C0", None),
                      (scale_params.lo, "C3", "0.5 x zscale (clip)"), (scale_params.hi, "C3", None)):
        axs[0].axvline(z, color=c, ls="--", label=lab)
    axs[0].set(yscale="log", xlabel="difference (fraction of sky)", ylabel="pixels",
               title="difference image, unclipped")
    axs[0].legend(fontsize=8)
    s = scaled.ravel()
    axs[1].hist(s, bins=200, histtype="step", color="k")
    axs[1].set(yscale="log", xlabel="scaled value (z units)", ylabel="pixels",
               title=f"after clipping and z-scoring: [{s.min():.2f}, {s.max():.2f}]")
    fig.tight_layout()
    return fig


def injection_before_after(before, after, injections, n=4):
    """ISR Fig. 5-6: subframes before and after blob injection, injected blobs circled.

    *injections* is a list (one per subframe) of (x, y, radius) arrays.
    """
    import matplotlib.pyplot as plt

    n = min(n, len(before))
    fig, axs = plt.subplots(2, n, figsize=(3.2 * n + 1.0, 6.6), squeeze=False, layout="constrained")
    for j in range(n):
        lim = (-3, 3)
        im = show_image(axs[0, j], before[j], "before injection", lim)
        show_image(axs[1, j], after[j], "after injection", lim)
        inj = np.asarray(injections[j]).reshape(-1, 3)
        _circles(axs[1, j], inj[:, 0], inj[:, 1], inj[:, 2], "lime", lw=0.8, scale=1.6)
    fig.colorbar(im, ax=axs.ravel().tolist(), shrink=0.8, pad=0.01, label="scaled value (z)")
    return fig


def real_vs_simulated_gallery(real: dict, simulated: list, size: int = 25):
    """Real cutouts (top rows) and simulated new blobs at the same processing (bottom rows)."""
    import matplotlib.pyplot as plt

    names = sorted(real)
    ncol = 10
    nrow_r = int(np.ceil(len(names) / ncol))
    nrow_s = int(np.ceil(len(simulated) / ncol))
    fig, axs = plt.subplots(nrow_r + nrow_s, ncol, figsize=(1.4 * ncol, 1.5 * (nrow_r + nrow_s)), squeeze=False)
    for ax in axs.ravel():
        ax.axis("off")
    for k, name in enumerate(names):
        ax = axs[k // ncol, k % ncol]
        ax.imshow(real[name], origin="lower", cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
        ax.set_title(f"real {name}", fontsize=7)
    for k, (img, label) in enumerate(simulated):
        ax = axs[nrow_r + k // ncol, k % ncol]
        ax.imshow(img, origin="lower", cmap="gray", vmin=-3, vmax=3, interpolation="nearest")
        ax.set_title(label, fontsize=7)
    fig.suptitle("top: real WFC3/IR blob cutouts (ISR processing); bottom: simulated new blobs, same processing "
                 "(scale -3..3 z)", fontsize=9)
    fig.tight_layout()
    return fig


def dip_examples(pairs, titles):
    """Dips: crops of the unregistered and registered difference around strong existing blobs."""
    import matplotlib.pyplot as plt

    n = len(pairs)
    fig, axs = plt.subplots(2, n, figsize=(2.4 * n + 1.0, 5.0), squeeze=False, layout="constrained")
    for j, (raw, reg) in enumerate(pairs):
        show_image(axs[0, j], raw, titles[j], (-3, 3))
        im = show_image(axs[1, j], reg, "registered", (-3, 3))
    fig.colorbar(im, ax=axs.ravel().tolist(), shrink=0.8, pad=0.01, label="z")
    fig.suptitle("dips at existing blobs from sub-pixel mis-registration (top) and after the dip correction "
                 "(bottom); z units", fontsize=9)
    return fig


def max_pixel_overlap(max_pos, max_neg):
    """Histogram of the brightest pixel of positive vs negative subframes (shortcut check)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.linspace(min(max_pos.min(), max_neg.min()), max(max_pos.max(), max_neg.max()), 40)
    ax.hist(max_neg, bins=bins, histtype="step", density=True, label=f"no blob (n={len(max_neg)})")
    ax.hist(max_pos, bins=bins, histtype="step", density=True, label=f"blob (n={len(max_pos)})")
    ax.set(xlabel="brightest pixel of the subframe (z units)", ylabel="density",
           title="brightest-pixel distributions overlap: no pasted-peak shortcut")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
