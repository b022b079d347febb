"""spacekit's SVM feature schema and encodings, feature-file validation and engineered features.

The 10 features, in spacekit's order: ``numexp, rms_ra, rms_dec, nmatches, point, segment, gaia,
det, wcs, cat``; the key column is ``index`` (the total detection product name, e.g.
``hst_12286_38_wfc3_ir_total_ibl738``; synthetic misalignments add a suffix such as
``_f110w_all_stoc``) and ``label`` is 0 aligned, 1 misaligned.

Encodings
---------
``det`` and ``wcs`` are the same in every spacekit version (alphabetical):
hrc 0, ir 1, sbc 2, uvis 3, wfc 4; "a posteriori" 0, "a priori" 1, "default a" 2, "not aligned" 3.

``cat`` (target category, from the MAST target classification before ``;``) has two schemes:

* ``"spacekit"`` -- spacekit >= 1.0 (fixed table): C 0, SS 1, I 2, U 3, SC 4, S 5, GC 6, G 7,
  anything else 8 (max + 1). This is what ``blobhelpers svm prep`` writes and what the models
  here use internally.
* ``"spacekit-2021"`` -- the 2021 training files (``svm_labeled_2021-07-28*.csv``,
  ``svm_unlabeled_2021-10-06.csv``): spacekit then fitted a ``LabelEncoder`` on the abbreviations
  present, i.e. alphabetical order with a missing category (NaN) last: C 0, G 1, GC 2, I 3, S 4,
  SC 5, U 6, unknown 7 (SOLAR SYSTEM never occurred; it is read as unknown). Checked against
  ``raw_svm_data_2021-11-02.csv``: every visit it shares with the 2021 files has G -> 1,
  ISM -> 3, STELLAR/EXT-CLUSTER -> 5, UNIDENTIFIED -> 6. Because that encoder was fitted on the
  data at hand, a one-visit file got ``det 0, cat 0`` (``sample_visit_ibl738/single_reg.csv``):
  such encodings depend on the file and are not reproducible; the fixed tables are.

Which encoding a file uses is not written in it, and the two tables disagree on every code but 0,
so a wrong guess changes predictions silently (the Oct 2021 screening: 125 flagged instead of 77).
:func:`detect_cat_encoding` therefore decides from the file itself: a ``cat_encoding`` column, a
``category`` column (MAST class or abbreviation) that must agree with ``cat``, codes that exist in
one table only (8), or else the likelihood of the code histogram under each table given how often
each target category occurs among real visits (:data:`CAT_PRIOR`); it answers only when one table
is at least :data:`DECISIVE_BAYES_FACTOR` times more likely. :func:`resolve_cat_encoding` refuses
an undecided file (:class:`InputError` asking for ``--cat-encoding``) and an explicit encoding the
file contradicts (unless forced).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.errors import InputError

__all__ = ["FEATURES", "CONTINUOUS", "CATEGORICAL", "DETECTORS", "WCSTYPES", "CATEGORY_ABBREV", "CAT_SCHEMES",
           "abbreviate_category", "encode_category", "recode_cat", "decode_cat", "encode_raw", "visit_of",
           "is_synthetic", "detector_name", "read_features", "detect_cat_encoding", "resolve_cat_encoding",
           "CAT_PRIOR", "DECISIVE_BAYES_FACTOR", "AUTO", "validate_features", "engineer", "ENGINEERED",
           "sample_kind"]

FEATURES = ("numexp", "rms_ra", "rms_dec", "nmatches", "point", "segment", "gaia", "det", "wcs", "cat")
CONTINUOUS = FEATURES[:7]
CATEGORICAL = FEATURES[7:]

DETECTORS = {"hrc": 0, "ir": 1, "sbc": 2, "uvis": 3, "wfc": 4}
WCSTYPES = {"a posteriori": 0, "a priori": 1, "default a": 2, "not aligned": 3}

# MAST target classification (the part before ';') -> spacekit's abbreviation.
CATEGORY_ABBREV = {
    "CALIBRATION": "C", "SOLAR SYSTEM": "SS", "ISM": "I", "EXT-MEDIUM": "I", "STAR": "S", "EXT-STAR": "S",
    "UNIDENTIFIED": "U", "NONE": "U", "STELLAR CLUSTER": "SC", "EXT-CLUSTER": "SC", "CLUSTER OF GALAXIES": "GC",
    "GALAXY": "G",
}

CAT_SCHEMES = {
    "spacekit": {"C": 0, "SS": 1, "I": 2, "U": 3, "SC": 4, "S": 5, "GC": 6, "G": 7, "?": 8},
    "spacekit-2021": {"C": 0, "G": 1, "GC": 2, "I": 3, "S": 4, "SC": 5, "U": 6, "?": 7, "SS": 7},
}
CANONICAL = "spacekit"
#: ``--cat-encoding auto``: decide from the file (:func:`resolve_cat_encoding`).
AUTO = "auto"

#: How often each target category occurs among real visits (the 878 real visits of the July 2021
#: labelled file; SOLAR SYSTEM never occurs), used with add-one smoothing to weigh the two
#: ``cat`` tables against each other.
CAT_PRIOR = {"C": 36, "G": 317, "GC": 101, "I": 24, "S": 115, "SC": 98, "U": 186, "?": 1, "SS": 0}
#: Odds one table must have over the other before the values alone decide the encoding.
DECISIVE_BAYES_FACTOR = 1000.0


def _scheme(name: str) -> dict:
    if name not in CAT_SCHEMES:
        raise InputError(f"unknown category encoding {name!r}; known: {sorted(CAT_SCHEMES)}")
    return CAT_SCHEMES[name]


def abbreviate_category(category) -> str:
    """spacekit's abbreviation of a MAST target classification; ``"?"`` if not one of its classes.

    Examples
    --------
    >>> abbreviate_category("UNIDENTIFIED;PARALLEL FIELD"), abbreviate_category("GALAXY;SPIRAL")
    ('U', 'G')
    >>> abbreviate_category("COMET"), abbreviate_category(None)
    ('?', 'U')
    """
    if category is None or (isinstance(category, float) and np.isnan(category)):
        return "U"
    head = str(category).split(";")[0].strip().upper()
    return CATEGORY_ABBREV.get(head, "?")


def encode_category(category, scheme: str = CANONICAL) -> int:
    """Integer code of a MAST target classification in *scheme*.

    Examples
    --------
    >>> encode_category("UNIDENTIFIED;PARALLEL FIELD"), encode_category("UNIDENTIFIED", "spacekit-2021")
    (3, 6)
    >>> encode_category("GALAXY"), encode_category("GALAXY", "spacekit-2021"), encode_category("COMET")
    (7, 1, 8)
    """
    return _scheme(scheme)[abbreviate_category(category)]


def decode_cat(codes, scheme: str) -> np.ndarray:
    """Abbreviations (``"C"``, ``"G"``, ..., ``"?"``) of integer ``cat`` codes in *scheme*."""
    inv = {}
    for abbr, code in _scheme(scheme).items():
        inv.setdefault(code, abbr)  # 2021: 7 -> "?" (SS was never present)
    codes = np.asarray(codes)
    bad = sorted({int(c) for c in np.unique(codes) if int(c) not in inv})
    if bad:
        raise InputError(f"cat code(s) {bad} do not exist in the {scheme!r} encoding (codes {sorted(inv)})")
    return np.array([inv[int(c)] for c in codes], dtype=object)


def recode_cat(codes, src: str, dst: str) -> np.ndarray:
    """Translate ``cat`` codes from encoding *src* to *dst*.

    Examples
    --------
    >>> recode_cat([1, 3, 5, 6, 7], "spacekit-2021", "spacekit").tolist()  # G, I, SC, U, unknown
    [7, 2, 4, 3, 8]
    >>> recode_cat([7, 2, 4, 3, 8], "spacekit", "spacekit-2021").tolist()
    [1, 3, 5, 6, 7]
    """
    if src == dst:
        return np.asarray(codes, dtype=np.int64)
    table = _scheme(dst)
    return np.array([table[a] for a in decode_cat(codes, src)], dtype=np.int64)


def visit_of(index) -> str | pd.Series:
    """Visit key of a product name: its first 7 underscore tokens (synthetic variants share it).

    Examples
    --------
    >>> visit_of("hst_11099_04_wfc3_ir_total_ia0m04_f110w_all_stoc")
    'hst_11099_04_wfc3_ir_total_ia0m04'
    """
    if isinstance(index, pd.Series):
        return index.astype(str).str.split("_").str[:7].str.join("_")
    return "_".join(str(index).split("_")[:7])


def is_synthetic(index) -> bool | pd.Series:
    """True for synthetic-misalignment products (more than 7 underscore tokens).

    Examples
    --------
    >>> is_synthetic("hst_9454_11_acs_hrc_total_j8ff11"), is_synthetic("hst_8992_03_acs_wfc_total_j8cw03_f475w_clear2l_sub_stat")
    (False, True)
    """
    if isinstance(index, pd.Series):
        return index.astype(str).str.split("_").str.len() > 7
    return len(str(index).split("_")) > 7


def sample_kind(df: pd.DataFrame) -> np.ndarray:
    """0 real aligned, 1 real misaligned, 2 synthetic misaligned (needs ``index`` and ``label``)."""
    syn = is_synthetic(df["index"]).to_numpy()
    return np.where(syn, 2, df["label"].to_numpy().astype(int))


def detector_name(det_code) -> str:
    """``1 -> "ir"`` etc."""
    inv = {v: k for k, v in DETECTORS.items()}
    return inv.get(int(det_code), f"det{int(det_code)}")


def encode_raw(raw: pd.DataFrame, cat_encoding: str = CANONICAL) -> pd.DataFrame:
    """The 10-feature table (spacekit's column order, ``index`` last) from a raw table.

    *raw* has spacekit's raw columns (``detector, numexp, point, segment, gaia, rms_ra, rms_dec,
    nmatches, wcstype, category, index``; extra columns are ignored), as written by
    :func:`blobhelpers.svm.prep.prep` or spacekit's ``raw_svm_data.csv``. Unknown detectors or
    WCS types raise :class:`InputError` naming the rows; unknown categories get the scheme's
    "unknown" code, as in spacekit.

    Examples
    --------
    >>> raw = pd.DataFrame({"detector": ["ir"], "numexp": [2], "point": [284], "segment": [185], "gaia": [7],
    ...                     "rms_ra": [5.88], "rms_dec": [13.38], "nmatches": [5], "wcstype": ["a posteriori"],
    ...                     "category": ["UNIDENTIFIED;PARALLEL FIELD"], "index": ["hst_12286_38_wfc3_ir_total_ibl738"]})
    >>> [v.item() if hasattr(v, "item") else v for v in encode_raw(raw).iloc[0]]
    [2, 5.88, 13.38, 5, 284, 185, 7, 1, 0, 3, 'hst_12286_38_wfc3_ir_total_ibl738']
    """
    need = ["detector", "wcstype", "category", "index", *CONTINUOUS]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise InputError(f"raw table lacks column(s) {missing}")
    out = pd.DataFrame({c: raw[c].to_numpy() for c in CONTINUOUS})
    det = raw["detector"].astype(str).str.strip().str.lower()
    wcs = raw["wcstype"].astype(str).str.strip().str.lower()
    for name, col, table in (("detector", det, DETECTORS), ("wcstype", wcs, WCSTYPES)):
        bad = ~col.isin(list(table))
        if bad.any():
            rows = raw.loc[bad.to_numpy(), "index"].astype(str).tolist()[:5]
            raise InputError(f"unknown {name} value(s) {sorted(set(col[bad]))} (rows {rows}); known: {list(table)}")
    out["det"] = det.map(DETECTORS).to_numpy()
    out["wcs"] = wcs.map(WCSTYPES).to_numpy()
    out["cat"] = [encode_category(c, cat_encoding) for c in raw["category"]]
    out["index"] = raw["index"].astype(str).to_numpy()
    return out


def validate_features(df: pd.DataFrame, source: str = "features", require_label: bool = False) -> pd.DataFrame:
    """Check a feature table and return it with numeric columns (``index`` kept as text).

    Raises :class:`InputError` naming *source* for: no rows, missing columns, non-numeric or
    missing values (with the offending rows), unknown ``det``/``wcs`` codes, duplicate ``index``.
    A ``label`` column is kept (and checked to be 0/1) when present.
    """
    if len(df) == 0:
        raise InputError(f"{source}: no rows")
    missing = [c for c in (*FEATURES, "index") if c not in df.columns]
    if require_label and "label" not in df.columns:
        missing.append("label")
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; expected spacekit's {list(FEATURES)} + index")
    out = pd.DataFrame({"index": df["index"].astype(str).to_numpy()})
    cols = list(FEATURES) + (["label"] if "label" in df.columns else [])
    for c in cols:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            rows = out["index"][bad].tolist()[:5]
            vals = df[c][bad].astype(str).tolist()[:5]
            raise InputError(f"{source}: column {c!r} has {int(bad.sum())} non-numeric or missing value(s), "
                             f"e.g. {vals} in rows {rows}")
        out[c] = num.to_numpy(dtype=float)
    for c, table in (("det", DETECTORS), ("wcs", WCSTYPES)):
        bad = ~np.isin(out[c], list(table.values()))
        if bad.any():
            raise InputError(f"{source}: column {c!r} has code(s) {sorted(set(out[c][bad]))} outside {sorted(table.values())}")
    if "label" in out and not np.isin(out["label"], (0, 1)).all():
        raise InputError(f"{source}: column 'label' must be 0 or 1")
    dup = out["index"].duplicated()
    if dup.any():
        raise InputError(f"{source}: duplicate index value(s) {out['index'][dup].tolist()[:5]}")
    return out[["index", *FEATURES] + (["label"] if "label" in out else [])]


def read_features(path: str | Path, cat_encoding: str = AUTO, require_label: bool = False,
                  force_cat_encoding: bool = False) -> pd.DataFrame:
    """Read and validate a feature CSV; ``cat`` is translated from its encoding to the canonical one.

    Parameters
    ----------
    path : path
        CSV with spacekit's 10 feature columns and ``index`` (``label`` optional).
    cat_encoding : {"auto", "spacekit", "spacekit-2021"}
        How the file encodes ``cat`` (``"spacekit-2021"`` for the 2021 training files); ``"auto"``
        detects it and refuses a file it cannot decide. An explicit encoding the file contradicts
        is refused unless *force_cat_encoding* (:func:`resolve_cat_encoding`).

    The encoding used and how it was decided are in ``.attrs["cat_encoding"]`` and
    ``.attrs["cat_encoding_note"]``.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path}: empty file (no header, no rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from exc
    out = validate_features(df, str(path), require_label=require_label)
    try:
        enc, note = resolve_cat_encoding(df.assign(cat=out["cat"].to_numpy()), cat_encoding, str(path),
                                         force_cat_encoding)
        out["cat"] = recode_cat(out["cat"].astype(int), enc, CANONICAL).astype(float)
    except InputError as exc:
        raise InputError(exc.args[0] if str(exc).startswith(str(path)) else f"{path}: {exc}") from exc
    out.attrs["cat_encoding"], out.attrs["cat_encoding_note"] = enc, note
    return out


def _code_logprob(scheme: str) -> dict:
    tot = sum(CAT_PRIOR.values()) + len(CAT_PRIOR)
    out: dict = {}
    for abbr, code in _scheme(scheme).items():
        out[code] = out.get(code, 0.0) + (CAT_PRIOR[abbr] + 1) / tot
    return {c: math.log(v) for c, v in out.items()}


def _category_codes(values, scheme: str) -> np.ndarray:
    table = _scheme(scheme)
    return np.array([table[str(v).strip().upper()] if str(v).strip().upper() in table else encode_category(v, scheme)
                     for v in values], dtype=np.int64)


def detect_cat_encoding(df: pd.DataFrame) -> dict:
    """Which ``cat`` table a feature table uses, from the table itself.

    Returns ``{"encoding": name or None, "matters": bool, "reason": str, "log10_bayes_factor": float}``:
    ``encoding`` is None when the evidence is not decisive; ``matters`` is False when every code
    present means the same in both tables (only 0 = CALIBRATION), so the choice changes nothing.
    Evidence, in order: a ``cat_encoding`` column; a ``category`` column (MAST classification or
    abbreviation) that must reproduce ``cat`` under exactly one table; codes that exist in one
    table only; the log-likelihood ratio of the codes under :data:`CAT_PRIOR`
    (``log10_bayes_factor`` > 0 favours ``spacekit-2021``), decisive beyond
    :data:`DECISIVE_BAYES_FACTOR`.

    Examples
    --------
    >>> detect_cat_encoding(pd.DataFrame({"cat": [1] * 20 + [6] * 10}))["encoding"]  # G and U in 2021; SS, GC otherwise
    'spacekit-2021'
    >>> detect_cat_encoding(pd.DataFrame({"cat": [7, 3, 3, 4]}))["encoding"]  # G, U, U, SC in current spacekit
    'spacekit'
    >>> d = detect_cat_encoding(pd.DataFrame({"cat": [4]}))  # S in one table, SC in the other
    >>> d["encoding"], d["matters"]
    (None, True)
    """
    codes = pd.to_numeric(df["cat"], errors="coerce").to_numpy(dtype=float)
    codes = codes[np.isfinite(codes)].astype(np.int64)
    names = sorted(CAT_SCHEMES)
    res = {"encoding": None, "matters": True, "reason": "", "log10_bayes_factor": float("nan")}
    if "cat_encoding" in df.columns:
        vals = sorted({str(v).strip() for v in df["cat_encoding"].dropna()})
        if len(vals) == 1 and vals[0] in CAT_SCHEMES:
            return {**res, "encoding": vals[0], "reason": f"column cat_encoding = {vals[0]!r}"}
        raise InputError(f"column 'cat_encoding' has {vals}; expected one of {names}")
    possible = [s for s in names if set(np.unique(codes)) <= set(_scheme(s).values())]
    if "category" in df.columns and len(codes) == len(df):
        agree = [s for s in possible if np.array_equal(_category_codes(df["category"], s), codes)]
        if len(agree) == 1:
            return {**res, "encoding": agree[0], "reason": "the 'category' column reproduces cat only in this table"}
        if not agree:
            raise InputError(f"the 'category' column does not reproduce 'cat' in any encoding ({names})")
    if not possible:
        raise InputError(f"cat code(s) {sorted(set(codes.tolist()))} fit no encoding ({names})")
    if len(possible) == 1:
        other = next(s for s in names if s != possible[0])
        only = sorted(set(codes.tolist()) - set(_scheme(other).values()))
        return {**res, "encoding": possible[0], "reason": f"cat code(s) {only} exist only in {possible[0]!r}"}
    canon = {s: recode_cat(codes, s, CANONICAL) for s in names}
    if np.array_equal(canon[names[0]], canon[names[1]]):
        return {**res, "matters": False, "reason": "every cat code present means the same in both tables"}
    ll = {s: float(sum(_code_logprob(s)[int(c)] for c in codes)) for s in names}
    lbf = (ll["spacekit-2021"] - ll["spacekit"]) / math.log(10)
    res["log10_bayes_factor"] = lbf
    need = math.log10(DECISIVE_BAYES_FACTOR)
    hist = ", ".join(f"code {c}: {n}" for c, n in zip(*[a.tolist() for a in np.unique(codes, return_counts=True)]))
    if abs(lbf) >= need:
        enc = "spacekit-2021" if lbf > 0 else "spacekit"
        return {**res, "encoding": enc, "reason": f"the cat code counts ({hist}) favour {enc!r} by a log10 Bayes "
                                                  f"factor of {abs(lbf):.1f} (decisive from {need:.0f}), given how "
                                                  "often target categories occur"}
    return {**res, "reason": f"the cat code counts ({hist}) fit both tables (log10 Bayes factor {abs(lbf):.1f}, "
                             f"decisive from {need:.0f})"}


def resolve_cat_encoding(df: pd.DataFrame, requested: str = AUTO, source: str = "features",
                         force: bool = False) -> tuple[str, str]:
    """The ``cat`` encoding to read *df* with, and a note saying how it was decided.

    ``requested="auto"``: the detected one (:func:`detect_cat_encoding`); :class:`InputError`
    asking for ``--cat-encoding`` when the evidence is not decisive and the choice matters. An
    explicit encoding is checked against the file: codes it does not have, or decisive evidence for
    the other table, raise :class:`InputError` (``force=True`` uses it anyway, noted).
    """
    ev = detect_cat_encoding(df)
    choices = "--cat-encoding spacekit (current spacekit, `blobhelpers svm prep`) or --cat-encoding spacekit-2021 " \
              "(the 2021 files)"
    if requested == AUTO:
        if ev["encoding"]:
            return ev["encoding"], f"detected: {ev['reason']}"
        if not ev["matters"]:
            return CANONICAL, ev["reason"]
        raise InputError(f"{source}: cannot tell which `cat` encoding this file uses ({ev['reason']}); pass {choices}")
    _scheme(requested)
    codes = pd.to_numeric(df["cat"], errors="coerce").dropna().astype(np.int64)
    try:
        decode_cat(codes, requested)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc
    if ev["encoding"] and ev["encoding"] != requested and ev["matters"]:
        if not force:
            raise InputError(f"{source}: --cat-encoding {requested} contradicts the file, which looks "
                             f"{ev['encoding']}-encoded ({ev['reason']}); rerun with --cat-encoding {ev['encoding']} "
                             f"(or --force-cat-encoding if you are sure)")
        return requested, f"given and forced, although the file looks {ev['encoding']}-encoded ({ev['reason']})"
    return requested, "given" + (f"; consistent with the file ({ev['reason']})" if ev["encoding"] == requested else "")


ENGINEERED = ("log_numexp", "log_nmatches", "log_point", "log_segment", "log_gaia", "log_rms_ra", "log_rms_dec",
              "log_rms", "rms_zero", "rms_negative", "few_matches", "le1_match", "log_match_per_gaia",
              "log_point_per_gaia", "rms_asym", *(f"wcs_{k}" for k in range(4)), *(f"det_{k}" for k in range(5)),
              *(f"cat_{k}" for k in range(9)))


def engineer(df: pd.DataFrame) -> np.ndarray:
    """Engineered features (columns :data:`ENGINEERED`) from the 10 raw features (canonical ``cat``).

    The "few matches / zero rms" failure mode of real misalignments (drizzlepac issue 1183: a fit
    on fewer than 4 matches should not count) is made explicit: ``rms_zero`` (both rms exactly 0),
    ``rms_negative`` (rms -1: no fit), ``few_matches`` (nmatches < 4), ``le1_match``; the match
    count relative to the Gaia sources in the footprint; log-scaled counts and rms; one-hot
    ``wcs``, ``det`` and ``cat``. Stateless (no fitted parameters), so it cannot leak.

    Examples
    --------
    >>> X = engineer(pd.DataFrame([dict(numexp=4, rms_ra=0.0, rms_dec=0.0, nmatches=1, point=53, segment=36,
    ...                                 gaia=1.0, det=2, wcs=0, cat=7)]))
    >>> row = dict(zip(ENGINEERED, X[0].tolist()))
    >>> row["rms_zero"], row["few_matches"], row["cat_7"], X.shape == (1, len(ENGINEERED))
    (1.0, 1.0, 1.0, True)
    """
    f = {c: df[c].to_numpy(dtype=float) for c in FEATURES}
    pos = {c: np.clip(f[c], 0, None) for c in CONTINUOUS}
    cols = [np.log1p(pos["numexp"]), np.log1p(pos["nmatches"]), np.log1p(pos["point"]), np.log1p(pos["segment"]),
            np.log1p(pos["gaia"]), np.log1p(pos["rms_ra"]), np.log1p(pos["rms_dec"]),
            np.log1p(np.hypot(pos["rms_ra"], pos["rms_dec"])),
            ((f["rms_ra"] == 0) & (f["rms_dec"] == 0)).astype(float),
            ((f["rms_ra"] < 0) | (f["rms_dec"] < 0)).astype(float),
            (f["nmatches"] < 4).astype(float), (f["nmatches"] <= 1).astype(float),
            np.log((pos["nmatches"] + 1) / (pos["gaia"] + 1)), np.log((pos["point"] + 1) / (pos["gaia"] + 1)),
            np.log1p(pos["rms_ra"]) - np.log1p(pos["rms_dec"])]
    cols += [(f["wcs"] == k).astype(float) for k in range(4)]
    cols += [(f["det"] == k).astype(float) for k in range(5)]
    cols += [(f["cat"] == k).astype(float) for k in range(9)]
    return np.column_stack(cols)
