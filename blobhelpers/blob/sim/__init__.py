"""The project's own simulator: a CSM-monitor campaign with ground truth, blob profiles and injected blob stamps (imports io).

Modules
-------
shapes
    blob profiles (disc, ring, ellipse, real cutouts) and their parameters
campaign
    a simulated CSM-monitor campaign: frames, catalog of existing and new blobs, truth tables
injection
    blob stamps from real cutouts or parametric profiles, added to difference images
"""

__all__ = ["shapes", "campaign", "injection"]
