"""Daily new-blob monitor: newest CSM-monitor frame vs its history -> verdict, where, how strong, why.

For a target frame (the newest, or every frame with enough history) the monitor

1. orders the frames by DATE-OBS (not by name); unreadable frames are skipped with a warning
   naming them; the previous ``history`` usable frames form the median stack;
2. builds the registered blob difference image (:mod:`blobhelpers.blob.preprocess.difference`; blobs positive);
3. **detects** positive, blob-sized residuals with a multi-scale matched filter (Gaussian
   kernels of several radii; significance against a local, robust noise map) -- a cheap,
   complete list of places where *something* got darker;
4. drops candidates that coincide with blobs of the **known-blob catalog** (existing blobs and
   their mis-registration dips are not news);
5. **verifies** each remaining candidate with the CNN on a 256x256 subframe centred on it (the
   same preprocessing as training: clip at 0.5 x zscale, z-score; known blobs masked to the
   median so they cannot vouch for a candidate) and estimates its radius and central depth
   from the difference image;
6. explains every alert with a saliency map of the CNN's blob log-odds on that subframe.

Besides today's difference, the monitor searches the means of the last k one-day differences
(``accumulate``, k = 2, 3 by default): a blob is permanent, so a faint one missed on its first day
gains significance day by day (:mod:`~blobhelpers.blob.detect.monitor.accumulate`). Candidates on
the rim of an existing blob are judged after a local fit of the registration residual. An alert
already raised on an earlier day (the log in the output folder) is not raised again.

A frame is a *new blob* day when at least one non-catalogued candidate has CNN probability
>= ``threshold`` and matched-filter significance >= ``snr_min`` (today's difference) or
>= ``snr_acc`` (a k-day mean). Candidates above ``watch_snr`` that do not alert are *watched*:
logged and shown apart. The 16 grid tiles of the image are classified too and logged (the ISR's
per-subframe view).

Modules: accumulate, catalog, config, daily, records, render, tuning. (Day windows and registration
residuals; the known-blob catalog; MonitorConfig; Monitor, run_monitor and confirm; the log; the
daily HTML; thresholds tuned on a development campaign.)

Coordinates are 0-based pixel positions (x = column, y = row) in the input frames' arrays
(trimmed 1014x1014 frames keep their own coordinates), the same as the catalog's.
"""

from blobhelpers.blob.detect.monitor.catalog import CATALOG_COLUMNS, KnownCatalog
from blobhelpers.blob.detect.monitor.config import EXIT_NEW_BLOB, EXIT_NOTHING_NEW, TUNED, MonitorConfig
from blobhelpers.blob.detect.monitor.daily import FrameResult, Monitor, confirm, run_monitor
from blobhelpers.blob.detect.monitor.records import MonitorLog
from blobhelpers.blob.detect.monitor.render import summary_html
from blobhelpers.blob.detect.monitor.tuning import apply_tuned, read_tuned, write_tuned

__all__ = ["MonitorConfig", "Monitor", "FrameResult", "KnownCatalog", "CATALOG_COLUMNS", "MonitorLog",
           "EXIT_NOTHING_NEW", "EXIT_NEW_BLOB", "run_monitor", "confirm", "summary_html",
           "TUNED", "write_tuned", "read_tuned", "apply_tuned"]
