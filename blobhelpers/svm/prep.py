"""SVM prep: drizzlepac quality-analysis JSON + total detection FITS header -> raw table -> features.

Input layout (spacekit's): one folder per visit (or any tree) holding drizzlepac's SVM
quality-analysis files and the total detection drizzled product, e.g.::
    ibl738/hst_12286_38_wfc3_ir_total_ibl738_svm_gaia_sources.json
    ibl738/ibl738_ir_svm_num_sources.json            (older drizzlepac name of the same test)
    ibl738/hst_12286_38_wfc3_ir_total_ibl738_drz.fits

Each JSON is a drizzlepac ``HapDiagnostic`` dictionary: ``{"header": {primary header},
"general information": {..., "dataframe_index", "imgname", ...}, "data": {title: {"original
format", "data", "descriptions", "units"}}}``. Like spacekit, every scalar of every ``data`` item is
flattened to a dotted key with spaces turned into underscores (``number_of_sources.point``,
``Number_of_GAIA_sources.Number_of_GAIA_sources``); the header keeps TARGNAME, RA_TARG, DEC_TARG,
NUMEXP. The SCI (extension 1) header of the total product gives RMS_RA, RMS_DEC (mas), NMATCHES
and WCSTYPE (``"undistorted a posteriori solution ..."`` -> words 2-3 -> ``"a posteriori"``).

The target category comes from a local lookup table (``targname,category`` CSV; MAST's
target classification strings) -- never from the network unless ``mast=True`` is asked for.

Every visit is checked; a visit with a malformed JSON, an unreadable or missing FITS file, a
missing keyword, an unknown WCS type or category is skipped and reported in ``errors``
(nothing is silently filled in unless the caller asks for spacekit's fill values).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path, project_root, write_text
from blobhelpers.svm.features import CATEGORY_ABBREV, WCSTYPES, encode_raw

__all__ = ["RAW_COLUMNS", "SCRUB_COLUMNS", "DEFAULT_PATTERNS", "VisitError", "PrepResult", "CategoryLookup",
           "flatten_qa_json", "read_qa_json", "group_qa_files", "scrape_visit", "wcstype_of", "prep", "write_visit"]

RAW_COLUMNS = ("detector", "dataset", "targname", "ra_targ", "dec_targ", "numexp", "imgname", "point", "segment",
               "gaia", "rms_ra", "rms_dec", "nmatches", "wcstype", "category", "index")
SCRUB_COLUMNS = ("header.TARGNAME", "header.RA_TARG", "header.DEC_TARG", "header.NUMEXP", "gen_info.imgname",
                 "Number_of_GAIA_sources.Number_of_GAIA_sources", "number_of_sources.detector",
                 "number_of_sources.point", "number_of_sources.segment")
FITS_KEYS = ("RMS_RA", "RMS_DEC", "NMATCHES", "WCSTYPE")
DEFAULT_PATTERNS = ("*_total*_svm_*.json", "*_svm_num_sources.json")

_TOTAL = re.compile(r"^(hst_[0-9a-z]+_[0-9a-z]+_[a-z0-9]+_([a-z]+)_total_([0-9a-z]+))_svm_.*\.json$", re.I)
_NUMSRC = re.compile(r"^([0-9a-z]+)_([a-z]+)_svm_num_sources\.json$", re.I)


class VisitError(InputError):
    """One visit cannot be prepared; ``visit`` names it, the message names the file and problem."""
    def __init__(self, visit: str, message: str):
        super().__init__(f"{visit}: {message}")
        self.visit = visit
        self.reason = message


@dataclass
class PrepResult:
    """Tables of one prep run and the visits that were skipped."""
    scrubbed: pd.DataFrame  # JSON-scraped columns (spacekit's single_scrub layout) + index
    raw: pd.DataFrame  # RAW_COLUMNS (spacekit's raw_svm_data layout)
    features: pd.DataFrame  # the 10 features + index (spacekit's svm_data layout)
    errors: list = field(default_factory=list)  # [(visit, reason)]

    def error_table(self) -> pd.DataFrame:
        return pd.DataFrame(self.errors, columns=["visit", "error"])


def _scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def flatten_qa_json(qa: dict) -> dict:
    """Flatten one HapDiagnostic dictionary into spacekit's dotted keys.

    ``header.<KEY>`` for header keywords, ``gen_info.<key>`` for "general information", and
    ``<title>.<key>[.<subkey>...]`` (spaces -> underscores) for every scalar in the ``data``
    items; lists (e.g. source tables) are skipped.

    Examples
    --------
    >>> qa = {"header": {"TARGNAME": "ANY"}, "general information": {"imgname": "x_drz.fits"},
    ...       "data": {"Number of GAIA sources": {"original format": "<class 'dict'>",
    ...                                           "data": {"Number of GAIA sources": 7}}}}
    >>> flatten_qa_json(qa)
    {'header.TARGNAME': 'ANY', 'gen_info.imgname': 'x_drz.fits', 'Number_of_GAIA_sources.Number_of_GAIA_sources': 7}
    """
    out = {}
    for k, v in (qa.get("header") or {}).items():
        if _scalar(v):
            out[f"header.{k}"] = v
    for k, v in (qa.get("general information") or {}).items():
        if _scalar(v):
            out[f"gen_info.{k}"] = v

    def walk(prefix, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{str(k).replace(' ', '_')}", v)
        elif _scalar(obj):
            out[prefix] = obj

    for title, item in (qa.get("data") or {}).items():
        data = item.get("data") if isinstance(item, dict) else None
        walk(str(title).replace(" ", "_"), data)
    return out


def read_qa_json(path: Path) -> dict:
    """Load one quality-analysis JSON; :class:`InputError` naming the file if it is not one."""
    try:
        qa = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(qa, dict) or not {"header", "general information", "data"} <= set(qa):
        raise InputError(f"{path}: not a drizzlepac quality-analysis file (needs 'header', "
                         f"'general information' and 'data' sections)")
    return qa


def group_qa_files(root: Path, patterns=DEFAULT_PATTERNS) -> tuple[dict, list]:
    """Quality-analysis JSON files under *root*, grouped by (dataset, detector) from their names.

    Returns ``({(dataset, detector): [paths]}, [(file, reason)])`` for names that fit no visit.
    """
    root = Path(root)
    files = sorted({p for pat in patterns for p in (root.rglob(pat) if root.is_dir() else [])})
    groups, stray = {}, []
    for p in files:
        m, n = _TOTAL.match(p.name), _NUMSRC.match(p.name)
        if m:
            key = (m.group(3).lower(), m.group(2).lower())
        elif n:
            key = (n.group(1).lower(), n.group(2).lower())
        else:
            stray.append((str(p), "file name is not a total-product quality-analysis name"))
            continue
        groups.setdefault(key, []).append(p)
    return groups, stray


def wcstype_of(value: str) -> str:
    """spacekit's WCS type: words 2-3 of the WCSTYPE keyword.

    Examples
    --------
    >>> wcstype_of("undistorted a posteriori solution relative to GAIAeDR3")
    'a posteriori'
    >>> wcstype_of("distorted not aligned")
    'not aligned'
    """
    return " ".join(str(value).split(" ")[1:3]).strip().lower()


class CategoryLookup:
    """Target category (MAST target classification string) from local tables, optionally MAST.

    Lookup order: the user's tables (``targname,category`` CSVs, later files win), then the
    project's ``data/svm/target_categories.csv``, then rules (``ANY`` and ``PARALLEL*`` target names
    are parallel fields: UNIDENTIFIED), then MAST if ``mast=True`` (needs astroquery and network).
    Names are compared upper-case with spaces removed.
    """

    def __init__(self, tables=(), use_default: bool = True, mast: bool = False):
        self.table: dict[str, str] = {}
        paths = []
        default = project_root() / "data" / "svm" / "target_categories.csv"
        if use_default and default.exists():
            paths.append(default)
        paths += [Path(t) for t in tables]
        for p in paths:
            try:
                t = pd.read_csv(p, dtype=str)
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise InputError(f"{p}: cannot read the category table ({exc})") from exc
            if not {"targname", "category"} <= set(t.columns):
                raise InputError(f"{p}: category table needs columns 'targname' and 'category'")
            for name, cat in zip(t["targname"], t["category"]):
                if isinstance(name, str) and isinstance(cat, str):
                    self.table[self.key(name)] = cat.strip()
        self.mast = mast

    @staticmethod
    def key(targname: str) -> str:
        return re.sub(r"\s+", "", str(targname)).upper()

    def __call__(self, targname, ra=None, dec=None) -> str:
        k = self.key(targname)
        if k in self.table:
            return self.table[k]
        if k == "ANY" or k.startswith("PARALLEL"):
            return "UNIDENTIFIED;PARALLEL FIELD"
        if self.mast:
            return _mast_category(targname, ra, dec)
        raise KeyError(targname)


def _mast_category(targname, ra, dec) -> str:  # pragma: no cover - network, only when asked for
    try:
        from astroquery.mast import Observations
    except ImportError as exc:
        raise InputError("--mast needs astroquery (pip install astroquery)") from exc
    obs = Observations.query_criteria(target_name=str(targname), obs_collection="HST")
    cls = [c for c in obs["target_classification"] if isinstance(c, str) and c] if len(obs) else []
    if not cls:
        raise KeyError(targname)
    return cls[0]


def _fits_values(path: Path, visit: str, missing_keywords: str) -> dict:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            if len(hdul) < 2:
                raise VisitError(visit, f"{path}: no SCI extension (extension 1)")
            hdr = hdul[1].header
            vals = {k: hdr.get(k) for k in FITS_KEYS}
    except VisitError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise VisitError(visit, f"{path}: unreadable FITS ({exc})") from exc
    missing = [k for k, v in vals.items() if v is None]
    if missing and (missing_keywords != "zero" or "WCSTYPE" in missing):
        raise VisitError(visit, f"{path}: SCI header lacks {missing}")
    vals.update({k: 0 for k in missing})  # spacekit's fill value for RMS_RA/RMS_DEC/NMATCHES, when asked for
    out = {}
    for k in ("RMS_RA", "RMS_DEC", "NMATCHES"):
        try:
            out[k.lower()] = float(vals[k])
        except (TypeError, ValueError) as exc:
            raise VisitError(visit, f"{path}: {k} = {vals[k]!r} is not a number") from exc
    wcs = wcstype_of(vals["WCSTYPE"])
    if wcs not in WCSTYPES:
        raise VisitError(visit, f"{path}: WCSTYPE {vals['WCSTYPE']!r} gives {wcs!r}, not one of {list(WCSTYPES)}")
    out["wcstype"] = wcs
    out["nmatches"] = int(out["nmatches"])
    return out


def scrape_visit(files: list, lookup: CategoryLookup, root: Path | None = None, missing_gaia: str = "error",
                 missing_keywords: str = "error", unknown_category: str = "error") -> tuple[dict, dict]:
    """Scrape one visit's JSON files and FITS header into (scrub row, raw row); :class:`VisitError` if not possible."""
    files = [Path(f) for f in files]
    visit = files[0].parent.name + "/" + files[0].name.split("_svm_")[0]
    flat, sources = {}, {}
    for f in files:
        try:
            qa = read_qa_json(f)
        except InputError as exc:
            raise VisitError(visit, str(exc)) from exc
        for k, v in flatten_qa_json(qa).items():
            if k in SCRUB_COLUMNS or k in ("gen_info.dataframe_index",):
                if k in flat and flat[k] != v and not k.startswith("gen_info.dataframe_index"):
                    raise VisitError(visit, f"{f}: {k} = {v!r} contradicts {flat[k]!r} in {sources[k]}")
                if k == "gen_info.dataframe_index" and "_total_" not in str(v):
                    continue
                flat.setdefault(k, v)
                sources.setdefault(k, f)
    index = flat.get("gen_info.dataframe_index")
    if not index and "gen_info.imgname" in flat:
        index = str(flat["gen_info.imgname"])[:-9]
    if not index:
        raise VisitError(visit, "no total-product 'dataframe_index' or 'imgname' in its JSON files")
    visit = str(index)
    if "Number_of_GAIA_sources.Number_of_GAIA_sources" not in flat:
        if missing_gaia != "zero":
            raise VisitError(visit, "no 'Number of GAIA sources' (the *_svm_gaia_sources.json file is missing: "
                                    "drizzlepac writes none when it finds no Gaia source; pass missing_gaia='zero' "
                                    "to count that as 0)")
        flat["Number_of_GAIA_sources.Number_of_GAIA_sources"] = 0
    missing = [k for k in SCRUB_COLUMNS if k not in flat]
    if missing:
        raise VisitError(visit, f"missing key(s) {missing} in {sorted(str(f.name) for f in files)}")
    tokens = visit.split("_")
    if len(tokens) < 7:
        raise VisitError(visit, "dataframe_index is not a total-product name (hst_<prop>_<visit>_<inst>_<det>_total_<ipppss>)")
    detector, dataset = tokens[4].lower(), tokens[6].lower()
    if str(flat["number_of_sources.detector"]).lower() != detector:
        raise VisitError(visit, f"number_of_sources.detector {flat['number_of_sources.detector']!r} "
                                f"does not match the product name ({detector!r})")
    nums = {}
    for key, name in (("header.NUMEXP", "numexp"), ("number_of_sources.point", "point"),
                      ("number_of_sources.segment", "segment"),
                      ("Number_of_GAIA_sources.Number_of_GAIA_sources", "gaia"),
                      ("header.RA_TARG", "ra_targ"), ("header.DEC_TARG", "dec_targ")):
        try:
            nums[name] = float(flat[key])
        except (TypeError, ValueError) as exc:
            raise VisitError(visit, f"{sources.get(key, key)}: {key} = {flat[key]!r} is not a number") from exc
    imgname = str(flat["gen_info.imgname"])
    where = [files[0].parent / imgname]
    if root is not None:
        where += [Path(root) / dataset / imgname, Path(root) / imgname]
    img = next((p for p in where if p.exists()), None)
    if img is None:
        raise VisitError(visit, f"total detection image {imgname} not found (looked in {[str(p.parent) for p in where]})")
    fv = _fits_values(img, visit, missing_keywords)
    targ = str(flat["header.TARGNAME"])
    try:
        category = lookup(targ, nums["ra_targ"], nums["dec_targ"])
    except KeyError:
        if unknown_category != "unidentified":
            raise VisitError(visit, f"target {targ!r} is not in the category tables (add it to a targname,category "
                                    f"CSV, or pass unknown_category='unidentified' / --mast)") from None
        category = "UNIDENTIFIED"
    if str(category).split(";")[0].strip().upper() not in CATEGORY_ABBREV and unknown_category != "unidentified":
        raise VisitError(visit, f"category {category!r} of {targ!r} is not one of spacekit's classes")
    scrub = {k: flat[k] for k in SCRUB_COLUMNS}
    scrub["index"] = visit
    raw = {"detector": detector, "dataset": dataset, "targname": targ, "ra_targ": nums["ra_targ"],
           "dec_targ": nums["dec_targ"], "numexp": int(nums["numexp"]), "imgname": imgname,
           "point": int(nums["point"]), "segment": int(nums["segment"]), "gaia": int(nums["gaia"]),
           "rms_ra": fv["rms_ra"], "rms_dec": fv["rms_dec"], "nmatches": fv["nmatches"], "wcstype": fv["wcstype"],
           "category": category, "index": visit}
    return scrub, raw


def prep(path: str | Path, out: str | Path | None = None, *, patterns=DEFAULT_PATTERNS, categories=(),
         cat_encoding: str = "spacekit", missing_gaia: str = "error", missing_keywords: str = "error",
         unknown_category: str = "error", mast: bool = False, progress: bool = True) -> PrepResult:
    """Prepare every visit under *path*; write the tables to *out* if given.

    Parameters
    ----------
    path : path
        Folder tree holding the quality-analysis JSON files and total detection images.
    out : path, optional
        Output folder: ``scraped_json.csv`` (JSON keys), ``raw_svm_data.csv`` (spacekit's raw
        table), ``svm_data.csv`` (the 10 features + index), ``prep_errors.csv`` (skipped visits).
    categories : list of paths
        Extra ``targname,category`` tables.
    cat_encoding : {"spacekit", "spacekit-2021"}
        ``cat`` encoding of ``svm_data.csv``.
    missing_gaia, missing_keywords : {"error", "zero"}
        ``"zero"`` reproduces spacekit (no Gaia JSON -> 0 sources; missing RMS_RA, RMS_DEC or
        NMATCHES -> 0). A missing WCSTYPE is always an error (spacekit has no code for it).
    unknown_category : {"error", "unidentified"}
    mast : bool
        Ask MAST for targets missing from the tables (network; off by default).
    """
    from tqdm.auto import tqdm

    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: not found")
    groups, stray = group_qa_files(root, patterns)
    errors = [(f, reason) for f, reason in stray]
    if not groups:
        raise InputError(f"{root}: no quality-analysis JSON files matching {list(patterns)}")
    lookup = CategoryLookup(categories, mast=mast)
    scrubs, raws = [], []
    for key in tqdm(sorted(groups), desc="svm prep", disable=not progress):
        try:
            s, r = scrape_visit(groups[key], lookup, root, missing_gaia, missing_keywords, unknown_category)
        except VisitError as exc:
            errors.append((exc.visit, exc.reason))
            continue
        except InputError as exc:  # malformed JSON etc.: the message names the file
            errors.append((f"{key[0]}_{key[1]}", str(exc)))
            continue
        scrubs.append(s)
        raws.append(r)
    raw = pd.DataFrame(raws, columns=list(RAW_COLUMNS))
    dup = raw["index"].duplicated(keep=False)
    for idx in raw.loc[dup, "index"].unique():
        errors.append((idx, "the same product appears in more than one folder; skipped"))
    keep = ~dup.to_numpy()
    raw = raw[keep].reset_index(drop=True)
    scrubbed = pd.DataFrame(scrubs, columns=[*SCRUB_COLUMNS, "index"])[keep].reset_index(drop=True)
    features = encode_raw(raw, cat_encoding) if len(raw) else pd.DataFrame(columns=["numexp"])
    res = PrepResult(scrubbed, raw, features, errors)
    if out is not None:
        out = Path(out)
        write_text(out / "scraped_json.csv", scrubbed.to_csv(index=False))
        write_text(out / "raw_svm_data.csv", raw.to_csv(index=False))
        write_text(out / "svm_data.csv", features.to_csv(index=False))
        write_text(out / "prep_errors.csv", res.error_table().to_csv(index=False))
    return res


def write_visit(folder: str | Path, index: str, *, targname="ANY", ra_targ=0.0, dec_targ=0.0, numexp=1, point=0,
                segment=0, gaia=None, rms_ra=None, rms_dec=None, nmatches=None,
                wcstype="undistorted a posteriori solution relative to GAIAeDR3", legacy_num_sources: bool = False,
                extra_header: dict | None = None) -> Path:
    """Write one visit in drizzlepac's SVM quality-analysis format (tests and demonstrations).

    Writes ``<index>_svm_num_sources.json`` (or the older ``<ipppss>_<det>_svm_num_sources.json``),
    ``<index>_svm_gaia_sources.json`` (unless *gaia* is None: drizzlepac writes none without Gaia
    sources) and ``<index>_drz.fits`` (primary + SCI extension with RMS_RA, RMS_DEC, NMATCHES,
    WCSTYPE; a keyword given as None is left out). Returns the visit folder.
    """
    from astropy.io import fits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = index.split("_")
    det, ipppss = tok[4], tok[6]
    img = f"{index}_drz.fits"
    header = {"TELESCOP": "HST", "INSTRUME": tok[3].upper(), "DETECTOR": det.upper(), "PROPOSID": int(tok[1]),
              "TARGNAME": targname, "RA_TARG": ra_targ, "DEC_TARG": dec_targ, "NUMEXP": numexp, "FILENAME": img,
              **(extra_header or {})}
    gen = {"telescope": "HST", "proposal_id": tok[1], "instrument": tok[3].upper(), "detector": det.upper(),
           "visit": tok[2], "filter": "detection", "dataset": ipppss, "dataframe_index": index, "imgname": img,
           "generation date": "05/04/2021", "generation time": "13:46:35", "seconds since epoch": 1620135995.0,
           "commit id": "0000000", "data_source": None, "description": None}

    def qa(data, source, description):
        g = dict(gen, data_source=f"svm_quality_analysis.{source}", description=description)
        return {"header": header, "general information": g, "data": data}

    num = {"number_of_sources": {"original format": "<class 'dict'>",
                                 "data": {"detector": det, "point": point, "segment": segment},
                                 "descriptions": {"detector": "Detector in use"},
                                 "units": {"detector": "unitless", "point": "unitless", "segment": "unitless"}}}
    name = f"{ipppss}_{det}_svm_num_sources.json" if legacy_num_sources else f"{index}_svm_num_sources.json"
    write_text(folder / name, json.dumps(qa(num, "compare_num_sources", "Number of sources in Point and Segment "
                                                                          "catalogs"), indent=4))
    if gaia is not None:
        rng = np.random.default_rng(len(index))
        table = {"RA": {"dtype": "float64", "unit": "deg", "format": None,
                        "data": (ra_targ + rng.normal(0, 0.01, int(gaia))).tolist()},
                 "DEC": {"dtype": "float64", "unit": "deg", "format": None,
                         "data": (dec_targ + rng.normal(0, 0.01, int(gaia))).tolist()}}
        data = {"GAIA sources": {"original format": "<class 'astropy.table.table.Table'>", "data": table,
                                 "descriptions": {"RA": "Right Ascension"}, "units": {"RA": "degrees"}},
                "Number of GAIA sources": {"original format": "<class 'collections.OrderedDict'>",
                                           "data": {"Number of GAIA sources": int(gaia)},
                                           "descriptions": {"Number of GAIA sources": "Number of GAIA sources in "
                                                                                      "image footprint"},
                                           "units": {"Number of GAIA sources": "unitless"}}}
        write_text(folder / f"{index}_svm_gaia_sources.json",
                   json.dumps(qa(data, "find_gaia_sources", "A table of GAIA sources in image footprint"), indent=4))
    sci = fits.Header()
    for k, v in (("RMS_RA", rms_ra), ("RMS_DEC", rms_dec), ("NMATCHES", nmatches), ("WCSTYPE", wcstype)):
        if v is not None:
            sci[k] = v
    prim = fits.Header()
    for k, v in header.items():
        prim[k] = v
    hdul = fits.HDUList([fits.PrimaryHDU(header=prim), fits.ImageHDU(np.zeros((8, 8), "f4"), sci, name="SCI")])

    with atomic_path(folder / img) as tmp:
        hdul.writeto(tmp, overwrite=True)
    return folder
