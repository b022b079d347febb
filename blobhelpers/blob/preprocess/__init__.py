"""From frames to model inputs (imports io): difference images, the ISR's scaling, augmentation.

Modules
-------
difference
    illumination normalisation, the median history stack, registration, predicted dips
scaling
    the ISR's zscale clip and z-score, border handling, the 256-px tile grid, the residual representation
augment
    flips, rotations and noise of training subframes
"""

__all__ = ["difference", "scaling", "augment"]
