"""The monitor itself: frames ordered by date -> difference -> candidates -> CNN -> verdicts."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import hashlib
import json
import logging
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blobhelpers.blob.detect.alertfigures import save_alert_pngs
from blobhelpers.blob.detect.detection import detect_candidates, measure_blob, screen, valid_mask, verify
from blobhelpers.blob.detect.monitor.accumulate import (change_on_raised, core_mean, deeper_than_known,
                                                         illumination_fix, merge_windows, pattern_scale, pixel_noise,
                                                         registration_explained, strong_structure, window_means)
import blobhelpers.blob.detect.monitor.accumulate as _accumulate_module
import blobhelpers.blob.io.fitsio as _fitsio_module
import blobhelpers.blob.io.frames as _frames_module
import blobhelpers.blob.io.wfc3 as _wfc3_module
import blobhelpers.blob.preprocess.difference as _difference_module
from blobhelpers.blob.detect.monitor.catalog import KnownCatalog
from blobhelpers.blob.detect.monitor.config import MonitorConfig, deep_enough
from blobhelpers.blob.detect.monitor.records import MonitorLog
from blobhelpers.blob.detect.monitor.render import summary_html
from blobhelpers.blob.detect.monitor.tuning import thresholds_provenance
from blobhelpers.blob.detect.products import monitor_header, product_paths, record_image, save_products as _save
from blobhelpers.blob.io.fitsio import BORDER, expand_frame_paths, frame_time, read_frame, read_header, to_full_frame
from blobhelpers.blob.io.wfc3 import describe, history_summary, signature_differences
from blobhelpers.blob.learn.cnn import load_model, load_preprocessing
from blobhelpers.blob.learn.inference import saliency
from blobhelpers.blob.preprocess.difference import (_blob_pattern, _now, difference_from_stack, median_stack, normalize,
                                                     single_threaded_blas)
from blobhelpers.blob.preprocess.scaling import TILE, scale_image, tile_origins
from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import default_workers
from blobhelpers.core.paths import sha256_file, write_text
from blobhelpers.core.report import versions

__all__ = ["FrameResult", "Monitor", "run_monitor", "confirm"]

log = logging.getLogger("blobhelpers.blob.detect.monitor")


@dataclass
class FrameResult:
    """One processed frame: the JSON record plus arrays for figures (not logged)."""
    record: dict
    diff: np.ndarray | None = None
    scaled: np.ndarray | None = None
    explain: dict = field(default_factory=dict)  # candidate index -> (subframe, saliency, (y0, x0))
    history_dates: tuple = ()  # DATE-OBS of the first and last history frames (for the saved products)
    difference_key: str = ""   # what made the difference image (Monitor.difference_key), saved as DIFFKEY


class _NoPool:
    """Stands in for a thread pool when the frames are processed one by one."""
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


#: px beyond a candidate's measured radius that a known blob's mask leaves visible around it (Monitor._mask_known)
KEEP_PX = 2.0


def _absorbed(k: int, x: float, y: float, cand: dict, by: str) -> dict:
    """A candidate that a catalogued blob or an alert already raised accounts for (the record's
    ``absorbed``: what the monitor saw there and set aside, strongest first)."""
    return {"k": k, "x": round(x, 2), "y": round(y, 2), "snr": round(cand["snr"], 2), "by": by}


class Monitor:
    """Run the monitor over an ordered set of frames (see the module docstring).

    Parameters
    ----------
    frames : iterable of path-like
        FITS files, folders or globs; ordered by DATE-OBS (unreadable headers: skipped, warned).
    model : keras.Model or path-like
    config : MonitorConfig
    known : KnownCatalog, optional
    model_name : str, optional
        Recorded in the log (default: the model path).
    products : path-like, optional
        A folder of difference images saved by earlier runs (``OUT/products``, the daily job's):
        the day windows take an earlier day's one-day difference from there instead of making it
        again, when its ``DIFFKEY`` says it was made from the same frames' pixels, configuration
        and code (:meth:`difference_key`); anything else is made anew.
    """

    def __init__(self, frames, model, config: MonitorConfig | None = None, known: KnownCatalog | None = None,
                 model_name: str | None = None, preprocessing: dict | None = None,
                 products: str | Path | None = None):
        self.config = config or MonitorConfig()
        self.known = known if known is not None else KnownCatalog()
        paths = expand_frame_paths(frames)
        if not paths:
            raise InputError(f"no FITS frames found in {[str(f) for f in frames]}")
        self.skipped: list[dict] = []
        # Each frame's header is read once here: its date orders the frames, its signature (FILTER,
        # DETECTOR, size, unit) checks the history's consistency below.
        found = []
        for p in paths:
            try:
                try:
                    sig, header = describe(p, with_header=True)
                except InputError:
                    sig, header = None, read_header(p)  # the frame's own error (named) surfaces when it is read
                found.append((p, frame_time(header, p), sig))
            except InputError as exc:
                self._skip(p, str(exc))
        if not found:
            raise InputError("none of the frames given could be read: " + "; ".join(s["reason"] for s in self.skipped))
        found.sort(key=lambda t: (t[1], str(t[0])))
        self.ordered = [(p, when) for p, when, _ in found]
        ordered = self.ordered
        # History consistency (headers only): frames must share FILTER, DETECTOR, size and unit
        # with the newest readable frame. Those that differ are skipped (warned, named in the
        # log) when they are loaded; too few matching frames is a clear error now.

        self._info: dict[int, dict] = {}
        sigs: dict[int, dict | None] = {j: sig for j, (_, _, sig) in enumerate(found)}
        ref_j = next((j for j in range(len(ordered) - 1, -1, -1) if sigs[j] is not None), None)
        self.reference: dict | None = None
        if ref_j is not None:
            self.reference = {"frame": ordered[ref_j][0].name,
                              **{k: v for k, v in sigs[ref_j].items() if k != "layout"}}
            bad = {j: signature_differences(sg, self.reference) for j, sg in sigs.items() if sg is not None}
            bad = {j: d for j, d in bad.items() if d}
            n_match = sum(sg is not None for sg in sigs.values()) - len(bad)
            if bad and n_match - 1 < self.config.min_history:
                ref = self.reference
                listed = "; ".join(f"{ordered[j][0].name}: {', '.join(d)}" for j, d in list(bad.items())[:8])
                raise InputError(
                    f"the history cannot be made consistent with the newest frame {ref['frame']} (FILTER "
                    f"{ref['FILTER'] or '?'}, DETECTOR {ref['DETECTOR'] or '?'}, {ref['shape']}, unit "
                    f"{ref['unit'] or '?'}): {n_match - 1} earlier frame(s) match, the monitor needs at least "
                    f"{self.config.min_history}; {len(bad)} differ: {listed}{'; ...' if len(bad) > 8 else ''}")
        if isinstance(model, (str, Path)):
            self.model_path = Path(model)
            self.model_sha256 = sha256_file(self.model_path) if self.model_path.is_file() else ""
            self.model = load_model(model)
        else:
            self.model_path, self.model_sha256, self.model = None, "", model
        fallback = {"clip_factor": self.config.clip_factor, "border_rule": self.config.border_rule}
        if preprocessing is not None:
            self.preprocessing = {"representation": "isr", **fallback, **preprocessing}
        elif self.model_path is not None:
            self.preprocessing = load_preprocessing(self.model_path, fallback)
        else:  # an in-memory model without a preprocessing record: the ISR scaling of the config
            self.preprocessing = {"representation": "isr", **fallback, "source": "config"}
        self.model_name = model_name or (str(self.model_path) if self.model_path else getattr(model, "name", "model"))
        self._cache: dict[int, np.ndarray | None] = {}
        self._recent: dict[int, np.ndarray] = {}  # one-day differences of recent frames (accumulated evidence)
        self._no_difference: set[int] = set()    # frames that cannot have one (unreadable, too little history)
        self.raised = KnownCatalog()  # alerts already raised (earlier days of the log, earlier frames of this run)
        self._trimmed: dict[int, bool] = {}
        self._crc: dict[int, int] = {}            # CRC-32 of each frame's pixels as read (difference_key)
        self.products = Path(products) if products is not None else None
        self.reused: list[str] = []               # earlier days' differences taken from self.products
        self._versions = versions()

    # -- frames ---------------------------------------------------------------------------
    def _skip(self, path, reason: str, kind: str = "unreadable") -> None:
        """Skip *path* with a warning naming it; *kind*: unreadable, unusable or inconsistent."""
        if not any(s["file"] == str(path) for s in self.skipped):
            log.warning("skipping %s: %s", path, reason)
            self.skipped.append({"file": str(path), "reason": reason, "kind": kind})

    def _load(self, indices) -> None:
        """Read and normalise the frames *indices* not yet cached (bad ones cached as None).

        The frames are read and checked here, one after the other (astropy's reader silences its
        warnings, which is not thread-safe), and each is normalised in a thread pool as soon as it
        is read; no more than a few raw frames are held at once.
        """
        from concurrent.futures import ThreadPoolExecutor

        todo = [j for j in indices if j not in self._cache]
        if not todo:
            return
        threads = default_workers(4) if len(todo) > 1 else 1
        pending: list = []   # (j, future of the normalised frame), in frame order

        def collect(keep: int) -> None:
            while len(pending) > keep:
                j, fut = pending.pop(0)
                self._cache[j] = fut.result()

        with single_threaded_blas(), (ThreadPoolExecutor(threads) if threads > 1 else _NoPool()) as ex:
            for j in todo:
                path = self.ordered[j][0]
                try:
                    fr = read_frame(path)
                except InputError as exc:
                    self._skip(path, str(exc).replace(f"{path}: ", ""))
                    self._cache[j] = None
                    continue
                diffs = signature_differences(fr.signature, self.reference) if self.reference else []
                if diffs:
                    self._skip(path, f"inconsistent with the newest frame {self.reference['frame']}: "
                               + ", ".join(diffs), kind="inconsistent")
                    self._cache[j] = None
                    continue
                good = np.isfinite(fr.data).mean()
                if good < 0.5:
                    self._skip(path, f"only {good:.0%} of the pixels are finite", kind="unusable")
                    self._cache[j] = None
                    continue
                if self.products is not None:  # the pixels' CRC-32 enters the key of saved differences
                    self._crc[j] = zlib.crc32(np.ascontiguousarray(fr.data))
                self._trimmed[j] = fr.trimmed
                self._info[j] = fr.provenance()
                job = functools.partial(normalize, to_full_frame(fr.data))
                pending.append((j, ex.submit(job) if ex is not None else _now(job)))
                del fr, job
                collect(2 * threads)
            collect(0)

    def input_provenance(self, i: int) -> dict:
        """Where frame *i*'s verdict comes from (the log record's ``input``): the reader path,
        unit, header keywords and masked-pixel counts of the frame; the same summarised over its
        history; the consistency check against the newest frame (frames skipped, named); and
        the source of the alert thresholds (:func:`~blobhelpers.blob.detect.monitor.tuning.thresholds_provenance`).
        """

        hist = [k for k in sorted(self._cache) if k < i and self._cache[k] is not None][-self.config.history:]
        odd = [s for s in self.skipped if s.get("kind") == "inconsistent"]
        return {**self._info.get(i, {}),
                "history": history_summary([self._info[k] for k in hist if k in self._info]),
                "consistency": {"reference": self.reference, "checked": ["FILTER", "DETECTOR", "size", "unit"],
                                "n_skipped": len(odd), "skipped": [Path(s["file"]).name for s in odd]},
                "n_skipped_other": len(self.skipped) - len(odd),
                "thresholds": thresholds_provenance(self.config)}

    def _evict(self, keep_from: int) -> None:
        for j in [j for j in self._cache if j < keep_from]:
            del self._cache[j]

    def history_of(self, i: int) -> list[int]:
        """Indices of the usable frames forming the history of frame *i* (oldest first)."""
        need = self.config.history
        hist: list[int] = []
        j = i - 1
        while j >= 0 and len(hist) < need:
            lo = max(0, j - (need - len(hist)) + 1)
            self._load(range(lo, j + 1))
            hist += [k for k in range(j, lo - 1, -1) if self._cache.get(k) is not None][: need - len(hist)]
            j = lo - 1
        return sorted(hist)

    def index_of(self, path) -> int:
        p = Path(path).resolve()
        for i, (q, _) in enumerate(self.ordered):
            if q.resolve() == p:
                return i
        raise InputError(f"{path}: not among the frames given (or unreadable)")

    # -- one frame ------------------------------------------------------------------------
    def process(self, i: int, with_arrays: bool = False) -> FrameResult:
        """Difference, detect, verify and explain frame *i* (an index into ``self.ordered``).

        Raises :class:`InputError` when the frame itself is unreadable or has fewer than
        ``min_history`` usable frames before it.
        """
        return self._one(self._inputs(i), with_arrays)

    def _one(self, inp: dict, with_arrays: bool, release: bool = False) -> FrameResult:
        """:meth:`process` of a frame whose inputs are loaded. One frame alone: its day windows'
        images are at hand before its difference is made, so today's search and the windows'
        searches run side by side (the same results as in turn). With *release* (a run that judges
        this frame only), the frames read are let go as soon as the difference is made."""
        earlier = self._earlier_differences(inp["i"], max(self.config.accumulate, default=1) - 1)
        return self._finish(inp, self._compute(inp, earlier, release), with_arrays)

    def release_frames(self) -> None:
        """Let go of the frames read so far (a later call reads again what it needs); unreadable
        frames stay known as such."""
        for j in [j for j, a in self._cache.items() if a is not None]:
            del self._cache[j]

    def process_many(self, indices, with_arrays: bool = False, workers: int | None = None,
                     skip_errors: bool = False):
        """Yield ``(i, FrameResult)`` for the frames *indices*, in order: what :meth:`process`
        gives for each, called one after the other.

        The work that depends on nothing but the frames (median stack, registration, difference,
        matched filter) of the next *workers* frames runs in a thread pool (NumPy and SciPy release
        the GIL) while the frames are judged in order: everything that reads or may change
        ``self.known`` -- the catalog match, the CNN verification, the verdict -- runs in the
        caller's thread when the frame's turn comes, after the caller has handled the frame
        before. *workers* defaults to :func:`~blobhelpers.core.parallel.default_workers` (the CPU
        count, at most 2; ~40 MB per frame in flight); 1 runs them one by one. A frame that cannot be processed raises
        :class:`InputError` in its turn, or with *skip_errors* is logged as a warning and skipped.
        One frame alone (the daily job) is judged as :meth:`process` judges it (its day windows
        searched beside today's difference) and the frames read are let go once its difference is
        made (:meth:`release_frames`: the CNN, the products and the HTML need none of them).
        """
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        workers = default_workers() if workers is None else max(1, int(workers))
        indices = list(indices)
        if len(indices) == 1:   # the daily job: one frame, judged as :meth:`process` does, its frames let go early
            try:
                inp = self._inputs(indices[0])
            except InputError as exc:
                if not skip_errors:
                    raise
                log.warning("%s", exc)
                return
            yield indices[0], self._one(inp, with_arrays, release=True)
            return
        todo = iter(indices)
        queue: deque = deque()  # (i, inputs or None, future or InputError)

        def fill(ex) -> None:
            while sum(1 for q in queue if q[1] is not None) < workers:
                i = next(todo, None)
                if i is None:
                    return
                try:
                    inp = self._inputs(i)
                except InputError as exc:
                    queue.append((i, None, exc))
                    continue
                queue.append((i, inp, ex.submit(self._compute, inp) if ex is not None else None))

        with ThreadPoolExecutor(workers) if workers > 1 else _NoPool() as ex:
            fill(ex)
            while queue:
                i, inp, fut = queue.popleft()
                if inp is None:
                    if not skip_errors:
                        raise fut
                    log.warning("%s", fut)
                else:
                    computed = fut.result() if fut is not None else self._compute(inp)
                    yield i, self._finish(inp, computed, with_arrays)
                fill(ex)

    def _inputs(self, i: int) -> dict:
        """Load frame *i* and its history (the frame cache: the caller's thread only) and take
        the snapshot of the bookkeeping its record reports."""
        cfg = self.config
        path, when = self.ordered[i]
        self._load([i])
        cur = self._cache.get(i)
        if cur is None:
            reason = next((s["reason"] for s in self.skipped if s["file"] == str(path)), "unreadable")
            raise InputError(f"{path}: cannot process the frame ({reason})")
        hist = self.history_of(i)
        if len(hist) < cfg.min_history:
            raise InputError(f"{path}: only {len(hist)} usable frame(s) before it (dated {when:%Y-%m-%d}); "
                             f"the monitor needs at least {cfg.min_history} (history {cfg.history})")
        self._evict(hist[0])
        return {"i": i, "path": path, "when": when, "current": cur, "history": [self._cache[j] for j in hist],
                "hist": hist, "trimmed": bool(self._trimmed.get(i)), "input": self.input_provenance(i),
                "skipped": [dict(s) for s in self.skipped],
                "key": self.difference_key(i, hist) if self.products is not None else ""}

    def difference_key(self, i: int, hist: list[int]) -> str:
        """SHA-256 (hex) of everything frame *i*'s one-day difference is made from: the names and
        pixels (CRC-32 as read) of the frame and of its history frames *hist*, the configuration
        that shapes the difference, and the source of the code that makes it
        (:func:`_code_fingerprint`). Saved as the product's ``DIFFKEY``; an earlier day's saved
        difference is reused only when its key is this one."""
        cfg = self.config
        what = {"frame": [self.ordered[i][0].name, self._crc.get(i)],
                "history": [[self.ordered[j][0].name, self._crc.get(j)] for j in hist],
                "config": {k: getattr(cfg, k) for k in ("register", "pattern_fit", "renormalize",
                                                        "renormalize_nsigma")},
                "code": _code_fingerprint()}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def _saved_difference(self, inp: dict) -> np.ndarray | None:
        """The one-day difference of *inp*'s frame from :attr:`products` if one was saved with the
        same :meth:`difference_key` (in the monitor's 1024x1024 array), else None."""
        if self.products is None:
            return None
        from astropy.io import fits

        path = product_paths(self.products, _stem(inp["path"]))[0]
        if not path.is_file():
            return None
        try:
            with fits.open(path, memmap=False) as hdul:
                if hdul[0].header.get("DIFFKEY") != inp["key"]:
                    return None
                img = np.asarray(hdul[0].data, np.float32)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s: not reused (%s); the difference is made again", path, exc)
            return None
        if inp["trimmed"] and img.shape == (1024 - 2 * BORDER,) * 2:
            img = np.pad(img, BORDER, constant_values=np.nan)
        if img.shape != inp["current"].shape:
            return None
        self.reused.append(path.name)
        return img

    def _difference(self, inp: dict, release: bool = False):
        """The one-day difference of a frame against its history (thread-safe), and the mask of
        its strong structure (None: none, or ``renormalize`` off). With *release* (one frame alone,
        not thread-safe), the history frames are let go once their median is made, the current one
        once the difference is made.

        With ``renormalize``, strong structure in the difference (a deep new blob, a bright
        transient: :func:`~blobhelpers.blob.detect.monitor.accumulate.strong_structure`) is left
        out of the current frame's illumination and the difference made again: a deep new blob
        would otherwise sit in a negative halo of its own making and be rejected as a dipole or a
        bright transient (:func:`~blobhelpers.blob.detect.monitor.accumulate.illumination_fix`).
        With ``pattern_fit``, the share of the history's blob pattern the difference holds (an
        additive level that the current frame has and the history lacks) is fitted over the frame
        and removed first (:func:`~blobhelpers.blob.detect.monitor.accumulate.pattern_scale`).
        """
        cfg = self.config
        cur = inp["current"]
        stack, n_history = median_stack(inp["history"]), len(inp["history"])
        if release:
            inp["history"] = []
            self.release_frames()
        diff = difference_from_stack(stack, cur, cfg.register, n_history=n_history)
        scale = 0.0
        if cfg.pattern_fit:
            # an additive level the history lacks scales every existing blob's dip alike: fit and remove it
            dips = 1.0 - (diff.pattern if diff.pattern is not None else _blob_pattern(diff.stack))
            scale = pattern_scale(diff.data, diff.stack, dips=dips)
            if scale:
                diff = dataclasses.replace(diff, data=(diff.data - np.float32(scale) * dips).astype(np.float32))
        mask = None
        if cfg.renormalize:
            mask = strong_structure(diff.data, cfg.renormalize_nsigma)
            if mask is not None:
                corr = illumination_fix(cur, mask)
                # history - current/corr - dip model: only where the factor is not 1
                diff = dataclasses.replace(diff, data=(diff.data + cur * (np.float32(1) - np.float32(1) / corr)
                                                       ).astype(np.float32))
        if release:
            inp["current"] = None
        # the strong-structure mask goes on to today's search (its S/N map's block background)
        return dataclasses.replace(diff, meta={**diff.meta, "pattern_scale": scale}, pattern=None), mask

    def _search(self, img: np.ndarray, snr_min: float, strong: np.ndarray | None | bool = False) -> list[dict]:
        """The detection core's candidates of one image, screened (dipole, bright transient).

        With ``renormalize``, the image's strong positive structure is also left out of the block
        background and noise of the S/N map (a deep blob must not dig a ring around itself); for
        today's difference the mask that :meth:`_difference` made is passed as *strong* (None: no
        strong structure), for the day windows it is made here."""
        det = self.config.detection()
        bg = None
        if self.config.renormalize:
            bg = strong_structure(img, self.config.renormalize_nsigma) if strong is False else strong
        return screen(detect_candidates(img, det.radii, snr_min, valid=valid_mask(img), background_mask=bg), det)

    def _compute(self, inp: dict, earlier: list[np.ndarray] | None = None, release: bool = False) -> dict:
        """The part of a frame's processing that depends on its pixels alone (thread-safe).

        Given the *earlier* days' one-day differences (oldest first), the day windows' means are
        made and searched here too, in parallel with today's search. *release*: see :meth:`_difference`."""
        diff, strong = self._difference(inp, release)
        d = diff.data
        prep = self.preprocessing
        cfg = self.config
        scaled = None
        if prep["representation"] == "isr":
            scaled, _ = scale_image(d, clip_factor=prep["clip_factor"], border_rule=prep["border_rule"])
        if earlier is None:
            return {"diff": diff, "candidates": self._search(d, cfg.snr_min, strong), "scaled": scaled}
        from concurrent.futures import ThreadPoolExecutor

        means = window_means(earlier + [d], cfg.accumulate)
        with single_threaded_blas(), ThreadPoolExecutor(min(2, 1 + len(means))) as ex:
            today = ex.submit(self._search, d, cfg.snr_min, strong)
            found = {k: ex.submit(self._search, img, min(cfg.watch_snr, cfg.snr_acc)) for k, img in means.items()}
            windows = {k: (means[k], None, f.result()) for k, f in found.items()}
            cands = today.result()
        return {"diff": diff, "candidates": cands, "scaled": scaled, "windows": windows, "earlier": earlier}

    def _finish(self, inp: dict, computed: dict, with_arrays: bool) -> FrameResult:
        """Known-catalog match, accumulated evidence, CNN verification, verdict and record of one frame (in order)."""
        cfg = self.config
        path, when, hist = inp["path"], inp["when"], inp["hist"]
        diff, cands_all, scaled = computed["diff"], computed["candidates"], computed["scaled"]
        d = diff.data
        off = BORDER if inp["trimmed"] else 0
        det = cfg.detection()
        # The detection core (blobhelpers.blob.detect.detection): masked S/N map -> candidates -> dipole and
        # bright-transient tests -> known-catalog filter -> budget -> registration-residual fit -> CNN on
        # centred subframes. Today's difference is window k = 1; the means of the last k one-day
        # differences (monitor.accumulate) are searched the same way (blobhelpers.blob.detect.monitor.accumulate).
        windows = {1: (d, scaled, cands_all)}
        if "windows" in computed:
            windows.update(computed["windows"])
            earlier = computed["earlier"]
        else:
            earlier = self._earlier_differences(inp["i"], max(cfg.accumulate, default=1) - 1)
            for k, img in window_means(earlier + [d], cfg.accumulate).items():
                windows[k] = (img, None, self._search(img, min(cfg.watch_snr, cfg.snr_acc)))
        self._recent[inp["i"]] = d
        known, raised = self.catalogs_for(hist)
        members, rejected, n_known, n_raised = [], [], 0, 0
        absorbed: list[dict] = []   # candidates a catalogued blob or an alert already raised accounts for
        change, change_found = None, []   # today's minus yesterday's difference, and its candidates (when needed)
        noise: dict[int, float] = {}   # robust pixel noise of each window image (when needed)
        for k, (img, _, found) in windows.items():
            kept = 0
            for c in sorted(found, key=lambda c: -c["snr"]):
                if c["reject"]:
                    if k == 1:
                        rejected.append(c)
                    continue
                if kept >= det.max_candidates:
                    if k == 1:
                        c["reject"] = "over budget"
                        rejected.append(c)
                    continue
                kept += 1
                m = measure_blob(img, c["x"], c["y"], c["scale"])
                x_in, y_in = m["x"] - off, m["y"] - off
                explained = None
                on_known = False
                kb = known.match(x_in, y_in, cfg.known_margin)
                rb = raised.match(x_in, y_in, cfg.known_margin)
                if kb is not None:
                    # A known blob is in the history: what it leaves in the difference is a residual
                    # of registration, centred on its rim, or the blob itself while the history does
                    # not hold it yet (confirmed lately), centred on it -- no deeper than the blob is
                    # and the history lacks. A candidate that is neither (beside the blob, or deeper
                    # than it can be: a new blob on top of it) is judged as any other.
                    explained = registration_explained(img, diff.stack, c["x"], c["y"], c["scale"],
                                                       cfg.residual_window, cfg.residual_gradient)
                    if explained >= cfg.known_residual:
                        n_known += k == 1
                        absorbed.append(_absorbed(k, x_in, y_in, c, "catalogued blob: registration residual"))
                        continue
                    if known.same_blob(kb, x_in, y_in, cfg.known_core):
                        if rb is not None or not self._beyond_known(kb, img, k, diff.stack, m, c["scale"], noise):
                            n_known += k == 1
                            absorbed.append(_absorbed(k, x_in, y_in, c, "catalogued blob"))
                            continue
                        on_known = True
                # A new blob on an alert already raised: the raised blob is in yesterday's difference as in
                # today's, so what changed since yesterday is judged (change_on_raised), today's window only.
                if rb is not None and k == 1 and earlier and kb is None:
                    if change is None:   # the detection core on the day-over-day change, once per frame
                        change = (d - earlier[-1]).astype(np.float32)
                        # the raised blob fades a little from one day to the next (the history median takes
                        # one more frame of it each day), so the change has a negative lobe there: the
                        # dipole test does not apply; a shift of the day before is fitted instead
                        change_found = [q for q in self._search(change, cfg.snr_min) if q["reject"] in ("", "dipole")]
                    ch_snr, q = change_on_raised(change, earlier[-1], change_found, c["x"], c["y"], c["scale"])
                    mq = measure_blob(change, q["x"], q["y"], q["scale"]) if q is not None else None
                    if mq is not None and ch_snr >= cfg.snr_min and deep_enough(mq["depth"], cfg.min_depth):
                        members.append({"k": k, "x": round(mq["x"] - off, 2), "y": round(mq["y"] - off, 2),
                                        "radius": round(mq["radius"], 2), "depth": round(mq["depth"], 5),
                                        "snr": round(ch_snr, 2), "snr_raw": round(q["snr"], 2),
                                        "registration_explained": 0.0, "neg_snr": round(c["neg_snr"], 2),
                                        "dip": round(c["dip"], 2), "near_known": None, "on_known": False,
                                        "on_raised": True})
                        continue
                # Anything else within an alert's radius + margin is that alert: it is in the difference in
                # full until the history holds it, and its recorded depth is that of the window that raised
                # it (diluted when the blob was there on fewer of its days), so a depth test cannot tell it
                # from a new blob on it -- the day-over-day change above does.
                if rb is not None:
                    n_raised += k == 1
                    absorbed.append(_absorbed(k, x_in, y_in, c, "alert already raised"))
                    continue
                if explained is None:
                    explained = registration_explained(img, diff.stack, c["x"], c["y"], c["scale"],
                                                       cfg.residual_window, cfg.residual_gradient)
                members.append({"k": k, "x": round(x_in, 2), "y": round(y_in, 2), "radius": round(m["radius"], 2),
                                "depth": round(m["depth"], 5), "snr": round(c["snr"] * (1.0 - explained), 2),
                                "snr_raw": round(c["snr"], 2), "registration_explained": round(explained, 3),
                                "neg_snr": round(c["neg_snr"], 2), "dip": round(c["dip"], 2),
                                "near_known": kb.get("id") if kb is not None else None,
                                "on_known": on_known, "on_raised": False})
        # CNN: one centred subframe per candidate, on the image of its own window; the 16 grid tiles of
        # today's difference (the ISR's view) in the same batch. Known blobs (and their dips) are masked
        # in the candidates' subframes, so that a catalogued blob sharing the subframe cannot vouch for one.
        grid = tile_origins(1024, TILE)
        prob_m = np.zeros(len(members), np.float32)
        X_m = np.zeros((len(members), TILE, TILE), np.float32)
        orig_m: list = [None] * len(members)
        prob_t = None
        for k, (img, sc, _) in windows.items():
            idx = [n for n, c in enumerate(members) if c["k"] == k]
            tiles_here = grid if k == 1 else []
            if not idx and not tiles_here:
                continue
            if sc is None and self.preprocessing["representation"] == "isr":
                sc, _ = scale_image(img, clip_factor=self.preprocessing["clip_factor"],
                                    border_rule=self.preprocessing["border_rule"])
            centres = [(members[n]["x"] + off, members[n]["y"] + off) for n in idx]
            rep = self.preprocessing["representation"]
            # known blobs and raised alerts masked, except for a candidate judged ON one (deeper than it
            # can be): the mask would hide the candidate itself
            masked = ([j for j, n in enumerate(idx) if not (members[n]["on_known"] or members[n]["on_raised"])]
                      if len(self.known) or len(self.raised) else [])
            plain = [j for j in range(len(idx)) if j not in set(masked)]
            p_c = np.zeros(len(idx), np.float32)
            X_c = np.zeros((len(idx), TILE, TILE), np.float32)
            o_c: list = [None] * len(idx)
            if masked:
                # the candidate itself stays visible: a candidate beside a known blob lies inside that
                # blob's disc + margin, and would otherwise be hidden from its own subframe
                keep = [(centres[j][0], centres[j][1], members[idx[j]]["radius"] + KEEP_PX) for j in masked]
                mfull, mscaled = self._mask_known(img, sc, off, keep)
                p, X, o = verify(self.model, mfull, [centres[j] for j in masked], rep, mscaled)
                for q, j in enumerate(masked):
                    p_c[j], X_c[j], o_c[j] = p[q], X[q], o[q]
            if plain or tiles_here:
                p, X, o = verify(self.model, img, [centres[j] for j in plain], rep, sc, extra_tiles=tiles_here)
                for q, j in enumerate(plain):
                    p_c[j], X_c[j], o_c[j] = p[q], X[q], o[q]
                if tiles_here:
                    prob_t = p[len(plain):]
            for j, n in enumerate(idx):
                prob_m[n], X_m[n], orig_m[n] = p_c[j], X_c[j], o_c[j]
        for c, p in zip(members, prob_m):
            c["probability"] = round(float(p), 6)
            c["veto"] = "bright transient nearby" if c["neg_snr"] < -cfg.neg_veto else ""
            c["margin"] = c["snr"] - cfg.snr_threshold(c["k"])
            c["new"] = bool(p >= cfg.cnn_threshold(c["k"]) and c["margin"] >= 0 and deep_enough(c["depth"], cfg.min_depth)
                            and not c["veto"])
        # one candidate per place: the member that alerts (or comes closest to its threshold) speaks for it
        cands, rep_of = merge_windows(members)
        for c in cands:
            c["watch"] = bool(not c["new"] and not c["veto"] and c["snr"] >= cfg.watch_snr)
        alerts = [c for c in cands if c["new"]]
        nc = len(cands)
        prob = np.concatenate([np.array([prob_m[n] for n in rep_of], np.float32),
                               prob_t if prob_t is not None else np.zeros(len(grid), np.float32)])
        X = X_m[rep_of] if rep_of else np.zeros((0, TILE, TILE), np.float32)
        origins = [orig_m[n] for n in rep_of] + list(grid)
        tiles = []
        for k, (y0, x0) in enumerate(grid):
            inside = [c for c in cands if y0 <= c["y"] + off < y0 + TILE and x0 <= c["x"] + off < x0 + TILE
                      and c["k"] == 1]
            best = max((c["probability"] for c in inside), default=0.0)
            tiles.append({"row": y0 // TILE, "col": x0 // TILE, "x0": x0 - off, "y0": y0 - off, "size": TILE,
                          "probability": round(float(best), 6), "blob": any(c["new"] for c in inside),
                          "cnn_probability": round(float(prob[nc + k]), 6)})
        explain = {}
        if alerts and cfg.saliency:
            idx = [k for k, c in enumerate(cands) if c["new"]]
            sub = X[idx]
            smaps = saliency(self.model, sub)
            for n, k in enumerate(idx):
                explain[k] = (sub[n], smaps[n], origins[k])
        record = {
            "frame": path.name,
            "path": str(path),
            "date_obs": when.isoformat(timespec="seconds"),
            "trimmed": inp["trimmed"],
            "input": inp["input"],
            "verdict": "new_blob" if alerts else "nothing_new",
            "new_blob": bool(alerts),
            "n_alerts": len(alerts),
            "candidates": cands,
            "n_known_matched": n_known,
            "n_already_alerted": n_raised,
            "absorbed": sorted(absorbed, key=lambda a: -a["snr"])[:40],
            "watch": [k for k, c in enumerate(cands) if c["watch"]],
            "windows": sorted(windows),
            "rejected": [{"x": round(c["x"] - off, 2), "y": round(c["y"] - off, 2), "snr": round(c["snr"], 2),
                          "reason": c["reject"]} for c in rejected[:20]],
            "n_rejected": {r: sum(1 for c in rejected if c["reject"] == r)
                           for r in ("dipole", "bright transient", "over budget")},
            "preprocessing": self.preprocessing.get("representation"),
            "tiles": tiles,
            "history": {"n": len(hist), "first": self.ordered[hist[0]][0].name,
                        "last": self.ordered[hist[-1]][0].name},
            "shift": [round(diff.shift[0], 4), round(diff.shift[1], 4)],
            "pattern_scale": round(float(diff.meta.get("pattern_scale", 0.0)), 5),
            "skipped_frames": inp["skipped"],
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "threshold": cfg.threshold,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
            "known_catalog": {"path": str(self.known.path) if self.known.path else None, "n": len(self.known)},
            "versions": self._versions,
            "processed_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        span = tuple(self.ordered[k][1].isoformat(timespec="seconds") for k in (hist[0], hist[-1]))
        return FrameResult(record, d if with_arrays else None, scaled if with_arrays else None, explain, span,
                           inp["key"])

    def _beyond_known(self, row: dict, img: np.ndarray, k: int, stack: np.ndarray, m: dict, scale: float,
                      noise: dict) -> bool:
        """Whether a candidate measured *m* (in the window-*k* image *img*) centred on the known blob
        *row* is deeper than that blob can leave (:func:`~blobhelpers.blob.detect.monitor.accumulate.deeper_than_known`:
        its depth against the dip the history *stack* holds there, to ``known_excess`` times the noise of
        the depth; *noise* caches each window image's pixel noise)."""
        if noise.get(k) is None:
            noise[k] = pixel_noise(img)
        core = max(1.5, 0.4 * scale)
        hist_dip = 1.0 - core_mean(stack, m["x"], m["y"], core)   # the dip the history holds there
        sd = noise[k] / np.sqrt(max(1.0, np.pi * core * core))
        return deeper_than_known(m["depth"], _depth_of(row), hist_dip, sd, self.config.known_excess)

    def catalogs_for(self, hist: list[int]) -> tuple[KnownCatalog, KnownCatalog]:
        """``(known, raised)`` as a frame with history *hist* sees them. An alert already raised absorbs
        every candidate on it while the differences may carry it; once every frame of the history of
        the oldest day in the largest day window (``accumulate``) was taken on or after the alert's
        day, the median stacks hold the blob in full, as they hold a catalogued blob, and the alert
        joins the known blobs (judged as one: registration residual, the blob itself, or something
        deeper on it; ``near_known`` reads "alert of DATE"). Not sooner: a median stack holds a faint
        blob only in part until most of its frames carry it, and the day windows average differences
        made with earlier histories, so a blob raised 16 days before still shows at S/N 10-30."""
        if not len(self.raised) or not hist:
            return self.known, self.raised
        oldest = max(0, hist[0] - (max(self.config.accumulate, default=1) - 1))
        cutoff = self.ordered[oldest][1].date().isoformat()
        held, pending = [], []
        for r in self.raised.rows:
            seen = str(r.get("first_seen", "") or "")[:10]
            if seen and seen <= cutoff:
                held.append({**r, "id": f"alert of {seen}"})
            else:
                pending.append(r)
        if not held:
            return self.known, self.raised
        return KnownCatalog(self.known.rows + held, self.known.path), KnownCatalog(pending)

    def _earlier_differences(self, i: int, n: int) -> list[np.ndarray]:
        """The one-day differences of the *n* usable frames before frame *i* (oldest first).

        Those of frames judged earlier in this run are kept; the others (the daily job's first run
        of the day) are read from :attr:`products` when saved there by an earlier day's run with
        the same :meth:`difference_key`, or made now, exactly as on their own day. Frames without
        one (unreadable, or too little history) are passed over.
        """
        out: list[np.ndarray] = []
        j = i - 1
        while n > 0 and j >= 0 and len(out) < n:
            if j not in self._recent and j not in self._no_difference:
                try:
                    inp = self._inputs(j)
                except InputError:
                    self._no_difference.add(j)
                else:
                    saved = self._saved_difference(inp)
                    self._recent[j] = saved if saved is not None else self._difference(inp)[0].data
            if j in self._recent:
                out.append(self._recent[j])
            j -= 1
        keep = max(self.config.accumulate, default=1)
        for q in [q for q in self._recent if q < i - 3 * keep]:
            del self._recent[q]
        return out[::-1]

    def _mask_known(self, full: np.ndarray, scaled: np.ndarray | None, off: int, keep=()):
        """*full* with every known blob's and raised alert's disc (radius + margin) set to NaN,
        *scaled* with it set to 0. A disc that contains the centre of one of the candidates *keep*
        ``(x, y, r)`` (full-frame pixels) is not masked within *r* of that centre: the candidate itself
        stays visible, and the known blob elsewhere, and every other disc, stays hidden (so that none
        can vouch for it)."""
        k = np.concatenate([self.known.xyr(), self.raised.xyr()])
        out = full.copy()
        outs = scaled.copy() if scaled is not None else None
        keep = np.asarray(keep, float).reshape(-1, 3)
        n = out.shape[0]
        for x, y, r in k:
            R = r + self.config.known_margin
            x0, x1 = max(0, int(x + off - R)), min(n, int(x + off + R) + 2)
            y0, y1 = max(0, int(y + off - R)), min(n, int(y + off + R) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.ogrid[y0:y1, x0:x1]
            disc = (xx - x - off) ** 2 + (yy - y - off) ** 2 <= R * R
            for kx, ky, kr in keep:
                if (kx - x - off) ** 2 + (ky - y - off) ** 2 <= R * R:
                    disc &= (xx - kx) ** 2 + (yy - ky) ** 2 > kr * kr
            out[y0:y1, x0:x1][disc] = np.nan
            if outs is not None:
                outs[y0:y1, x0:x1][disc] = 0.0
        return out, outs

    def targets(self, all_frames: bool = False) -> list[int]:
        """The newest frame, or every frame with at least ``min_history`` earlier frames."""
        if not all_frames:
            return [len(self.ordered) - 1]
        return list(range(self.config.min_history, len(self.ordered)))


def _depth_of(row: dict) -> float | None:
    """A catalog row's depth, or None when it is not given (empty, NaN, not a number)."""
    try:
        v = float(row.get("depth"))
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _stem(path) -> str:
    """The products' file stem of a frame (its name up to the first dot)."""
    return Path(path).name.split(".")[0]


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """SHA-256 of the source of the modules that read frames and make the monitor's one-day
    difference: a saved difference made by other code is not reused."""
    h = hashlib.sha256()
    for mod in (_accumulate_module, _fitsio_module, _frames_module, _wfc3_module, _difference_module,
                sys.modules[__name__]):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def _add_alerts(catalog: KnownCatalog, rec: dict) -> None:
    """Add the alerts of the log record *rec* to *catalog* (the alerts already raised). Each alert is
    kept, even one within a few px of an earlier one (a new blob raised on an older alert must
    absorb what lies on it once the older one is judged as a catalogued blob:
    :meth:`Monitor.catalogs_for`); only the same place twice is one entry."""
    for c in rec.get("candidates", []):
        if c.get("new"):
            catalog.add(c["x"], c["y"], c["radius"], c.get("depth"), rec["date_obs"][:10], f"alert {rec['frame']}",
                        merge_px=0.0)


def run_monitor(frames, model, out: str | Path, config: MonitorConfig | None = None,
                known_path: str | Path | None = None, all_frames: bool = False, progress: bool = False,
                html: bool = True, save_products: bool = False) -> list[dict]:
    """What ``blobhelpers monitor`` does; returns the records written to ``OUT/monitor_log.jsonl``.

    In the default (daily) mode a newest frame that cannot be processed raises
    :class:`InputError`; with *all_frames* such frames are skipped with a warning.

    With *save_products* (the command's default; off here so that a pipeline running the
    monitor over hundreds of days writes no images) each frame's difference image and DS9
    region file go to ``OUT/products/<frame>_diff.fits`` and ``<frame>_regions.reg``
    (:mod:`blobhelpers.blob.detect.products`) and their paths into the record's ``products``.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    known = KnownCatalog.read(known_path) if known_path else KnownCatalog()
    mon = Monitor(frames, model, config, known, products=out / "products" if save_products else None)
    records = []
    targets = mon.targets(all_frames)
    # The state the daily job keeps in OUT: the log. An alert raised on an EARLIER day is not raised
    # again (a rerun of the same day gives the same verdict); alerts of this run join as it goes.
    log_path = out / "monitor_log.jsonl"
    first = mon.ordered[targets[0]][1].isoformat(timespec="seconds") if targets else ""
    for rec in MonitorLog(log_path).read() if log_path.is_file() else []:
        if rec.get("date_obs", "") < first:
            _add_alerts(mon.raised, rec)
    for i, res in tqdm(mon.process_many(targets, with_arrays=html or save_products, skip_errors=all_frames),
                       total=len(targets), desc="monitor", disable=not progress):
        pngs = save_alert_pngs(res.record, res.explain, out / "saliency") if mon.config.saliency and res.explain else []
        res.record["saliency_pngs"] = pngs
        stem = _stem(res.record["frame"])
        if save_products:
            res.record["products"] = _save(out / "products", stem, record_image(res.diff, res.record["trimmed"]),
                                           res.record, monitor_header(res.record, res.history_dates,
                                                                      res.difference_key), known=mon.known)
        if html:
            write_text(out / "summary" / f"{stem}.html",
                       summary_html(res.record, res.diff, pngs, base=out / "summary"))
            res.record["summary_html"] = str(out / "summary" / f"{stem}.html")
        _add_alerts(mon.raised, res.record)
        records.append(res.record)
    if records:
        MonitorLog(out / "monitor_log.jsonl").update(records)
    return records


def confirm(catalog_path: str | Path, log_path: str | Path | None = None, frame: str | None = None,
            candidates: list[int] | None = None, x: float | None = None, y: float | None = None,
            radius: float | None = None, depth: float | None = None, note: str = "") -> list[dict]:
    """Add confirmed blobs to the known-blob catalog (created if absent); returns the rows added.

    Either give a monitor log and a frame name (all its alerts, or the *candidates* indices),
    or a position (*x*, *y*, *radius*).
    """
    cat = KnownCatalog.read(catalog_path, must_exist=False)
    added = []
    if log_path is not None:
        if frame is None:
            raise InputError("confirm: --frame is required with --log")
        recs = [r for r in MonitorLog(log_path).read() if r["frame"] == frame or Path(r["path"]).name == frame]
        if not recs:
            raise InputError(f"{log_path}: no entry for frame {frame!r}")
        rec = recs[-1]
        cands = rec["candidates"]
        pick = candidates if candidates else [k for k, c in enumerate(cands) if c.get("new")]
        for k in pick:
            if not 0 <= k < len(cands):
                raise InputError(f"{log_path}: frame {frame} has no candidate {k} (0..{len(cands) - 1})")
            c = cands[k]
            added.append(cat.add(c["x"], c["y"], c["radius"], c.get("depth"), rec["date_obs"][:10],
                                 f"monitor:{frame}#{k}", note))
        if not pick:
            raise InputError(f"{log_path}: frame {frame} has no alerts to confirm (pass --candidate)")
    elif x is not None and y is not None:
        if radius is None or not radius > 0:
            raise InputError("confirm: --radius (> 0) is required with --x/--y")
        added.append(cat.add(x, y, radius, depth, "", "manual", note))
    else:
        raise InputError("confirm: give --log LOG --frame NAME, or --x X --y Y --radius R")
    cat.write(catalog_path)
    return added
