"""A product against its reproduction, extension by extension: bit for bit first, then within
tolerances; DQ per bit; the provenance keywords of the primary headers; and PNG pictures
(given, new, difference) drawn with the image's own matplotlib.

Runs inside the image (``runtime.rerun`` calls it) on the image's Python (3.7+), with numpy,
astropy and matplotlib only; the host turns its JSON into the report.
"""

import math
import os

import numpy as np

DQ_EXTENSIONS = ("DQ", "PIXELDQ", "GROUPDQ")
NOT_COMPARED = {"ASDF": "the datamodel's metadata tree (dates, file names, step logs)"}
# Primary-header keywords that say how a product was made; a difference in these but the
# informational ones makes the products different whatever their arrays hold.
PROVENANCE = ("CAL_VER", "CAL_VCS", "CRDS_VER", "CRDS_CTX")
INFORMATIONAL = ("CAL_VCS", "CRDS_VER")


def dq_names():
    """{bit value: flag name} of the installed datamodels (JWST's DQ flag table)."""
    table = {}
    for module in ("stdatamodels.jwst.datamodels.dqflags", "jwst.datamodels.dqflags"):
        try:
            pixel = __import__(module, fromlist=["pixel"]).pixel
        except (ImportError, AttributeError):
            continue
        for name, value in pixel.items():
            table.setdefault(int(value), name)
        break
    return table


def provenance_keys(header):
    return [k for k in header if k in PROVENANCE or k.startswith(("R_", "S_"))]


def compare_provenance(given, new):
    """[{key, given, new, informational}] for every provenance keyword that differs."""
    keys = list(dict.fromkeys(provenance_keys(given) + provenance_keys(new)))
    found = []
    for key in keys:
        a = str(given[key]).strip() if key in given else None
        b = str(new[key]).strip() if key in new else None
        if a != b:
            found.append({"key": key, "given": a, "new": b,
                          "informational": key in INFORMATIONAL})
    return found


def _bits(a, b, names):
    """Per DQ bit, how many pixels have it set in one product only."""
    flipped = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    rows = []
    for bit in range(64):
        value = 1 << bit
        count = int(np.count_nonzero(flipped & np.uint64(value)))
        if count:
            set_given = int(np.count_nonzero((a.astype(np.uint64) & np.uint64(value))
                                             & (flipped & np.uint64(value))))
            rows.append({"bit": bit, "value": value, "name": names.get(value, ""),
                         "count": count, "only_given": set_given,
                         "only_new": count - set_given})
    return rows


def compare_arrays(a, b, rtol=0.0, atol=0.0, dq=False, names=None):
    """One extension's arrays: counts of pixels that differ bit for bit and beyond
    ``atol + rtol * |given|``, the largest difference, and for DQ the flipped bits."""
    row = {"shape": list(a.shape), "dtype": str(a.dtype), "pixels": int(a.size)}
    if a.shape != b.shape:
        row.update(identical=False, within=False,
                   note=f"shape differs: given {list(a.shape)}, new {list(b.shape)}")
        return row
    same_type = a.dtype == b.dtype
    if same_type and a.dtype.kind in "fiub":  # NaN payloads and -0.0 count: bits, not values
        width = f"u{a.dtype.itemsize}"
        bitdiff = np.ascontiguousarray(a).view(width) != np.ascontiguousarray(b).view(width)
    else:
        bitdiff = a != b
    row["differing"] = int(np.count_nonzero(bitdiff))
    row["identical"] = row["differing"] == 0 and same_type
    if not same_type:
        row["note"] = f"type differs: given {a.dtype}, new {b.dtype}"
    if dq:  # flags: no tolerance
        row["bits"] = _bits(a, b, names or {})
        row["outside"] = row["differing"]
        row["within"] = row["differing"] == 0
        return row
    x, y = a.astype(np.float64), b.astype(np.float64)
    nan_x, nan_y = np.isnan(x), np.isnan(y)
    row["nan_only_one"] = int(np.count_nonzero(nan_x != nan_y))
    both = ~(nan_x | nan_y)
    with np.errstate(invalid="ignore", over="ignore"):
        delta = np.where(both & (x != y), np.abs(y - x), 0.0)
        delta = np.where(np.isnan(delta), np.inf, delta)  # inf against another value
        scale = np.abs(x)
        allowed = atol + rtol * scale
        outside = both & (delta > allowed)
    row["max_abs"] = float(delta.max()) if delta.size else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(both & (delta > 0), delta / np.where(scale > 0, scale, np.inf), 0.0)
    row["max_rel"] = float(np.nanmax(rel)) if rel.size else 0.0
    row["outside"] = int(np.count_nonzero(outside)) + row["nan_only_one"]
    row["within"] = row["outside"] == 0 and a.shape == b.shape
    for key in ("max_abs", "max_rel"):
        if not math.isfinite(row[key]):
            row[key] = str(row[key])  # JSON has no inf
    return row


def _table_row(a, b):
    same = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    differing = None
    if a.dtype == b.dtype and a.shape == b.shape:
        differing = int(sum(1 for x, y in zip(a, b) if x.tobytes() != y.tobytes()))
    return {"rows": int(len(a)), "identical": same, "within": same, "differing": differing,
            "outside": differing if differing is not None else int(len(a))}


def _key(hdu, index):
    name = (hdu.name or ("PRIMARY" if index == 0 else f"HDU{index}")).upper()
    return name, int(hdu.ver or 1)


def compare_files(given_path, new_path, rtol=0.0, atol=0.0):
    """Every extension and the provenance keywords of two products; the verdict is
    'identical', 'within tolerance' or 'different'."""
    from astropy.io import fits

    names = dq_names()
    rows = []
    with fits.open(given_path, memmap=False) as given, fits.open(new_path, memmap=False) as new:
        theirs = {_key(h, i): h for i, h in enumerate(new)}
        seen = set()
        for index, hdu in enumerate(given):
            key = _key(hdu, index)
            seen.add(key)
            row = {"extension": key[0], "ver": key[1]}
            other = theirs.get(key)
            if other is None:
                row.update(kind="missing", identical=False, within=False,
                           note="not in the new product")
            elif key[0] in NOT_COMPARED:
                row.update(kind="not compared", identical=True, within=True,
                           note=NOT_COMPARED[key[0]])
            elif hdu.data is None and other.data is None:
                continue  # the primary header: its provenance keywords are compared below
            elif hdu.data is None or other.data is None:
                row.update(kind="image", identical=False, within=False,
                           note="data in one product only")
            elif isinstance(hdu, fits.BinTableHDU) or hdu.data.dtype.names:
                row.update(kind="table", **_table_row(hdu.data, other.data))
            else:
                dq = key[0] in DQ_EXTENSIONS
                row.update(kind="dq" if dq else "image",
                           **compare_arrays(np.asarray(hdu.data), np.asarray(other.data),
                                            rtol, atol, dq, names))
            rows.append(row)
        for index, hdu in enumerate(new):
            key = _key(hdu, index)
            if key not in seen and key[0] not in NOT_COMPARED:
                rows.append({"extension": key[0], "ver": key[1], "kind": "extra",
                             "identical": False, "within": False,
                             "note": "only in the new product"})
        provenance = compare_provenance(given[0].header, new[0].header)
    failing = [p for p in provenance if not p["informational"]]
    if all(r["identical"] for r in rows) and not failing:
        verdict = "identical"
    elif all(r["within"] for r in rows) and not failing:
        verdict = "within tolerance"
    else:
        verdict = "different"
    return {"extensions": rows, "provenance": provenance, "verdict": verdict,
            "rtol": rtol, "atol": atol}


# -- pictures ----------------------------------------------------------------------------------
def _plane(data):
    """A 2-D view of an array: the first plane of leading axes (integrations, groups)."""
    data = np.asarray(data)
    while data.ndim > 2:
        data = data[0]
    return data if data.ndim == 2 else data.reshape(1, -1)


def _limits(values):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return (float(low), float(high)) if high > low else (float(low) - 0.5, float(low) + 0.5)


def draw(path, title, given, new, dq=False):
    """One PNG: given, new and their difference side by side (DQ: the bits that differ)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    a, b = _plane(given), _plane(new)
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.2), constrained_layout=True)
    if dq:
        a_img, b_img = (a != 0).astype(float), (b != 0).astype(float)
        diff = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64)) != 0
        panels = ((a_img, "given (flagged pixels)", "gray_r", (0, 1)),
                  (b_img, "new (flagged pixels)", "gray_r", (0, 1)),
                  (diff.astype(float), "bits differ", "Reds", (0, 1)))
    else:
        low, high = _limits(a.astype(np.float64))
        with np.errstate(invalid="ignore"):
            delta = b.astype(np.float64) - a.astype(np.float64)
        finite = delta[np.isfinite(delta)]
        span = float(np.abs(finite).max()) if finite.size else 0.0
        span = span if span > 0 else 1.0
        panels = ((a, "given", "viridis", (low, high)), (b, "new", "viridis", (low, high)),
                  (delta, "new - given", "RdBu_r", (-span, span)))
    for axis, (values, label, cmap, (vmin, vmax)) in zip(axes, panels):
        shown = axis.imshow(values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                            interpolation="nearest")
        axis.set_title(label)
        axis.set_xticks([])
        axis.set_yticks([])
        figure.colorbar(shown, ax=axis, shrink=0.8)
    figure.suptitle(title)
    figure.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(figure)
    return path


def draw_all(result, given_path, new_path, out_dir):
    """PNGs of SCI and of every image extension that differs; their file names."""
    from astropy.io import fits

    made = []
    with fits.open(given_path, memmap=False) as given, fits.open(new_path, memmap=False) as new:
        for row in result["extensions"]:
            wanted = row["kind"] in ("image", "dq") and "differing" in row and (
                row["extension"] == "SCI" or not row["identical"])
            if not wanted:
                continue
            key = (row["extension"], row["ver"])
            name = f"{key[0].lower()}_{key[1]}.png"
            title = f"{key[0]}: {row['differing']} pixels differ bit for bit of {row['pixels']}"
            if len(row["shape"]) > 2:
                title += " (first plane shown)"
            draw(os.path.join(out_dir, name), title, given[key].data, new[key].data,
                 dq=row["kind"] == "dq")
            row["picture"] = name
            made.append(name)
    return made
