"""Exception types shared by the package and the command-line interface."""

__all__ = ["BlobhelpersError", "InputError"]


class BlobhelpersError(Exception):
    """Base class of every error the package raises on purpose.

    The command-line interface prints the message (which names the file and the problem)
    and exits with a non-zero status.
    """


class InputError(BlobhelpersError, ValueError):
    """An input file or value is unusable (not FITS, truncated, wrong shape, all NaN...)."""
