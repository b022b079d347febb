"""Finding blobs in difference images (imports learn and below): the detection core and what uses it.

Modules
-------
detection
    candidates: matched filter, measurement, dipole and transient tests, CNN verification
classify
    whole-image verdicts for a batch of difference images (``blobhelpers classify``)
products
    what a person checks by eye: the judged difference image (FITS) and DS9 regions
alertfigures
    one PNG per alert: the CNN's subframe and its saliency
review
    the review view of a verdict: ginga (interactive or off-screen) and a matplotlib fallback
monitor
    the daily monitor (a sub-package: config, catalog, records, daily, render, tuning)
"""

__all__ = ["detection", "classify", "products", "alertfigures", "review", "monitor"]
