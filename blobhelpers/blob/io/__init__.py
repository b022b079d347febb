"""File input and output of the blob wing (the bottom layer: imports only :mod:`blobhelpers.core`).

Modules
-------
frames
    what every reader and writer shares: frame sizes, :class:`Frame`, the DQ flag table, opening a FITS file with a clear error, observation times, the atomic image writer
wfc3
    the WFC3/IR product layouts (RAW, IMA, FLT, plain): reading them to e-/s with DQ masks, writing them
fitsio
    the public reader (:func:`read_frame`, native float32, every problem an InputError naming the file) and writer

frames < wfc3 < fitsio: each imports only those before it.
"""

__all__ = ["frames", "wfc3", "fitsio"]
