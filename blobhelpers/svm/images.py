"""spacekit's SVM image inputs and its released ensemble model.

Images: three renderings of a visit's total detection image -- plain, point/segment catalog
overlay (``_source``), Gaia overlay (``_gaia``) -- in ``DIR/<index>/<index>{,_source,_gaia}.png``
(or under ``DIR/0/`` and ``DIR/1/``, spacekit's class folders). Each PNG is converted to RGB and
resized to 128x128 with nearest-neighbour sampling (what ``keras.utils.load_img`` does), giving
``(3, 128, 128, 3)`` float32 in 0-255 per visit; this reproduces spacekit's own arrays
(``img_pred_2samples.npz``) exactly. An ``.npz`` with ``index`` and ``images`` is read as is.

The released model (``svm_align.zip`` -> ``svm_align/ensembleSVM.keras``) is a Keras 3 file: it is
extracted to a temporary folder (member names checked) and loaded with ``safe_mode=True`` and
without compiling -- no pickle, no custom code. Its inputs are ``svm_inputs`` (10 raw features,
``cat`` in the 2021 encoding it was trained with) and ``img3d_inputs`` (raw 0-255 pixels).
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.deeplearning import keras_module as _keras
from blobhelpers.core.errors import InputError
from blobhelpers.svm.features import CANONICAL, FEATURES, recode_cat

__all__ = ["SIZE", "SUFFIXES", "load_triplet", "load_images", "load_spacekit_model", "spacekit_predict",
           "is_image_model"]

SIZE = 128
SUFFIXES = ("", "_source", "_gaia")


def _find(root: Path, index: str) -> Path | None:
    for base in (root / index, root / "0" / index, root / "1" / index):
        if (base / f"{index}.png").exists():
            return base
    return None


def load_triplet(folder: str | Path, index: str, size: int = SIZE) -> np.ndarray:
    """``(3, size, size, 3)`` float32 (0-255) from ``folder/<index>{,_source,_gaia}.png``."""
    from PIL import Image, UnidentifiedImageError

    frames = []
    for sfx in SUFFIXES:
        p = Path(folder) / f"{index}{sfx}.png"
        try:
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert("RGB").resize((size, size), Image.NEAREST), dtype=np.float32))
        except FileNotFoundError as exc:
            raise InputError(f"{p}: image missing (a visit needs {[f'{index}{s}.png' for s in SUFFIXES]})") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{p}: not a readable PNG ({exc})") from exc
    return np.stack(frames)


def load_images(source: str | Path, indices) -> tuple[list, np.ndarray]:
    """Images of the visits in *indices* found in *source* (a folder tree or an .npz): (found, array)."""
    source = Path(source)
    indices = [str(i) for i in indices]
    if not source.exists():
        raise InputError(f"{source}: image folder or .npz not found")
    if source.suffix == ".npz":
        try:
            with np.load(source, allow_pickle=False) as z:
                idx, imgs = [str(i) for i in z["index"]], np.asarray(z["images"], np.float32)
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(f"{source}: needs arrays 'index' and 'images' ({exc})") from exc
        if imgs.ndim != 5 or imgs.shape[1:] != (3, SIZE, SIZE, 3) or len(idx) != len(imgs):
            raise InputError(f"{source}: 'images' must be (n, 3, {SIZE}, {SIZE}, 3) with one index per image")
        pos = {k: i for i, k in enumerate(idx)}
        found = [i for i in indices if i in pos]
        return found, (imgs[[pos[i] for i in found]] if found else np.zeros((0, 3, SIZE, SIZE, 3), np.float32))
    found, arrays = [], []
    for i in indices:
        folder = _find(source, i)
        if folder is not None:
            arrays.append(load_triplet(folder, i))
            found.append(i)
    return found, (np.stack(arrays) if arrays else np.zeros((0, 3, SIZE, SIZE, 3), np.float32))


def is_image_model(path: str | Path) -> bool:
    """True for a spacekit ensemble file (``.zip`` or ``.keras``) rather than a blobhelpers model folder."""
    p = Path(path)
    return p.is_file() and p.suffix in (".zip", ".keras")


def load_spacekit_model(path: str | Path):
    """Load spacekit's released ensemble from ``svm_align.zip`` or ``ensembleSVM.keras`` (safe mode)."""
    keras = _keras()
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: model file not found")
    with tempfile.TemporaryDirectory() as tmp:
        if path.suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    members = [m for m in zf.namelist() if m.endswith(".keras")]
                    if len(members) != 1:
                        raise InputError(f"{path}: expected one .keras file inside, found {members}")
                    m = members[0]
                    if m.startswith(("/", "\\")) or ".." in Path(m).parts:
                        raise InputError(f"{path}: unsafe member name {m!r}")
                    target = Path(tmp) / "model.keras"
                    target.write_bytes(zf.read(m))
            except zipfile.BadZipFile as exc:
                raise InputError(f"{path}: not a zip file ({exc})") from exc
        else:
            target = path
        try:
            return keras.saving.load_model(target, compile=False, safe_mode=True)
        except (ValueError, OSError, TypeError) as exc:
            raise InputError(f"{path}: cannot load as a Keras 3 model ({exc})") from exc


def spacekit_predict(model, features: pd.DataFrame, images: np.ndarray, cat_encoding: str = CANONICAL) -> np.ndarray:
    """P(misaligned) of spacekit's ensemble for *features* (canonical ``cat``) and their *images*."""
    X = features[list(FEATURES)].to_numpy(dtype=np.float32).copy()
    X[:, FEATURES.index("cat")] = recode_cat(X[:, FEATURES.index("cat")].astype(int), cat_encoding, "spacekit-2021")
    names = [i.name for i in model.inputs]
    feeds = {"svm_inputs": X, "img3d_inputs": np.asarray(images, np.float32)}
    if set(names) != set(feeds):
        raise InputError(f"image model inputs {names} are not spacekit's {sorted(feeds)}")
    out = model.predict({n: feeds[n] for n in names}, verbose=0, batch_size=8)
    return np.asarray(out, float).ravel()
