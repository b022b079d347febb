"""Project paths and atomic file writing.

Every writer in the package goes through :func:`atomic_path`: the content is written to a
temporary name in the destination folder and renamed into place only when complete, so an
interrupted or failed run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["project_root", "atomic_path", "write_json", "write_text", "sha256_file"]


def project_root(start: str | os.PathLike | None = None) -> Path:
    """Return the project root: the first folder upwards from *start* holding ``dvc.yaml``.

    Falls back to the folder that contains the installed package's parent when no
    ``dvc.yaml`` is found (e.g. when the package is used outside the repository).
    """
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / "blobhelpers").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path next to *dest*; rename it onto *dest* if the block succeeds.

    Parameters
    ----------
    dest : path-like
        Final file name. Its folder is created if needed.
    suffix : str, optional
        Suffix of the temporary file (defaults to *dest*'s suffix, which matters to writers
        that choose a format from the extension, e.g. ``numpy.savez``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix if suffix is not None else dest.suffix,
                               dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write *text* to *dest* atomically and return the path."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | os.PathLike, obj, indent: int = 2) -> Path:
    """Write *obj* as JSON to *dest* atomically (sorted keys, trailing newline)."""
    return write_text(dest, json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | Path) -> str:
    """The SHA-256 hex digest of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
