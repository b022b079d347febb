"""Exception types shared by the package and the command-line interface."""

__all__ = ["BlobhelpersError", "InputError", "EXIT_OK", "EXIT_INTERNAL", "EXIT_INPUT", "EXIT_INTERRUPTED", "run_guarded"]


class BlobhelpersError(Exception):
    """Base class of every error the package raises on purpose.

    The command-line interface prints the message (which names the file and the problem)
    and exits with a non-zero status.
    """


class InputError(BlobhelpersError, ValueError):
    """An input file or value is unusable (not FITS, truncated, wrong shape, all NaN...)."""


#: Exit codes shared by every command: 0 success, 1 internal error (an unexpected exception,
#: with its traceback), 2 bad input (an :class:`InputError` or any :class:`BlobhelpersError`,
#: message on stderr), 130 interrupted. ``blobhelpers monitor`` adds 3 = new blob found.
EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_guarded(func, args, label: str) -> int:
    """Run ``func(args)`` as a command: the one error path of every CLI entry point.

    A :class:`BlobhelpersError` prints ``"<label>: error: <message>"`` on stderr and returns
    :data:`EXIT_INPUT`; Ctrl-C returns :data:`EXIT_INTERRUPTED`; anything else propagates
    (Python exits with 1 and a traceback: an internal error).
    """
    import sys

    try:
        return int(func(args) or EXIT_OK)
    except BlobhelpersError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
