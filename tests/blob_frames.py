"""Frames of the project's simulated campaign with one extra new blob on the last day (a test helper)."""

import numpy as np

from blobhelpers.blob.sim.shapes import BlobShape, render


def frames_with_new_blob(camp, n_frames, blob):
    """Yield ``(i, image, header)``; the last frame carries *blob* = (x, y, radius, depth), CSM shift applied."""
    for i in range(n_frames):
        img, hdr, _ = camp.frame(i)
        if i == n_frames - 1:
            occ = np.zeros_like(img)
            sx, sy = camp.shifts[i]
            render(occ, blob[0] + sx, blob[1] + sy, BlobShape(blob[2]), blob[3])
            img = img * (1 - occ)
        yield i, img, hdr
