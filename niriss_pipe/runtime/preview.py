"""PNG previews of calibrated products, made inside the image with its own matplotlib: what an
astronomer looks at first, without copying gigabytes off the cluster.

    python -m niriss_pipe.runtime.preview RATE.fits OUT.png [--thumbnail THUMB.png]
    python -m niriss_pipe.runtime.preview --products DIR

The SCI array is shown with a robust stretch (percentiles of the usable pixels, then asinh,
so a few hot pixels or a bright star do not flatten the rest) in grey, and the DQ flags that
matter to a reader are painted over it in colour, with a legend that counts them.
``--products DIR`` previews every rate product in DIR (else rateints, cal or i2d), each as
``NAME.png`` and a 128-pixel ``NAME.thumb.png`` beside it (what ``batch report`` shows).

Python 3.7 syntax, standard library plus the image's numpy, astropy and matplotlib.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

# Painted flags, first match wins (a saturated pixel is also DO_NOT_USE); RGB 0-255.
OVERLAY = (
    ("SATURATED", (255, 140, 0)),
    ("JUMP_DET", (0, 200, 255)),
    ("DEAD", (200, 0, 255)),
    ("HOT", (255, 0, 110)),
    ("DO_NOT_USE", (255, 30, 30)),
    ("REFERENCE_PIXEL", (60, 90, 255)),
)
# The JWST pixel DQ bits (fixed by the standard since the first releases; the unit tests check
# them against stdatamodels' table, which takes a second to import here).
PIXEL_FLAGS = {"DO_NOT_USE": 1, "SATURATED": 2, "JUMP_DET": 4, "DEAD": 1024, "HOT": 2048,
               "REFERENCE_PIXEL": 2 ** 31}
PRODUCT_SUFFIXES = ("_rate.fits", "_rateints.fits", "_cal.fits", "_i2d.fits")
THUMBNAIL = 128  # pixels on a side
PERCENTILES = (0.5, 99.5)
SOFTENING = 0.03  # asinh softening: smaller shows fainter structure


class PreviewError(Exception):
    """A product that cannot be previewed; the message says why, in one line."""


def read_product(path):
    """(SCI as a 2-D float array, DQ as a 2-D int array or None, primary header)."""
    from astropy.io import fits

    try:
        with fits.open(str(path), memmap=False) as hdus:
            names = [hdu.name for hdu in hdus]
            if "SCI" not in names:
                raise PreviewError(f"{path} has no SCI extension")
            sci = np.asarray(hdus["SCI"].data, dtype=float)
            dq = np.asarray(hdus["DQ"].data).astype(np.int64) if "DQ" in names else None
            header = dict(hdus[0].header)
    except OSError as exc:
        raise PreviewError(f"{path} cannot be read as FITS ({exc})") from None
    while sci.ndim > 2:  # rateints: the first integration
        sci = sci[0]
        dq = dq[0] if dq is not None and dq.ndim > 2 else dq
    if sci.ndim != 2 or not sci.size:
        raise PreviewError(f"{path}: SCI is not an image (shape {sci.shape})")
    if dq is not None and dq.shape != sci.shape:
        dq = None
    return sci, dq, header


def stretch(sci, usable):
    """SCI mapped to 0..1: clipped at percentiles of the usable finite pixels, then asinh."""
    finite = np.isfinite(sci)
    good = finite & usable
    values = sci[good] if good.any() else sci[finite]
    if not values.size:
        return np.zeros(sci.shape)
    low, high = np.percentile(values, PERCENTILES)
    if not high > low:
        high = low + 1.0
    scaled = np.clip((np.where(finite, sci, low) - low) / (high - low), 0.0, 1.0)
    return np.arcsinh(scaled / SOFTENING) / np.arcsinh(1.0 / SOFTENING)


def rgb_image(sci, dq, flags):
    """(H x W x 3 uint8 image, {flag: pixel count}): grey SCI, painted flags."""
    dq = np.zeros(sci.shape, dtype=np.int64) if dq is None else dq
    usable = (dq & flags.get("DO_NOT_USE", 1)) == 0
    grey = (stretch(sci, usable) * 255).astype(np.uint8)
    image = np.repeat(grey[:, :, None], 3, axis=2)
    painted = np.zeros(sci.shape, dtype=bool)
    counts = {}
    for name, colour in OVERLAY:
        bit = flags.get(name)
        if bit is None:
            continue
        hit = ((dq & bit) != 0) & ~painted
        if hit.any():
            image[hit] = colour
            painted |= hit
            counts[name] = int(hit.sum())
    return image, counts


def _figure(width, height, dpi=100):
    import matplotlib

    matplotlib.use("Agg")  # no display in a container; MPLBACKEND may be unset elsewhere
    from matplotlib.figure import Figure

    return Figure(figsize=(width / dpi, height / dpi), dpi=dpi)


def _save(figure, out, dpi=100):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    tmp = Path(out).with_name(f".{Path(out).name}.{os.getpid()}.tmp.png")
    figure.savefig(str(tmp), dpi=dpi)
    os.replace(str(tmp), str(out))  # a reader never sees half a PNG


def write_preview(image, counts, header, name, out):
    """The full preview: the image, a title (product, CAL_VER, CRDS_CTX) and a flag legend."""
    figure = _figure(640, 720)
    axes = figure.add_axes([0.06, 0.16, 0.88, 0.76])
    axes.imshow(image, origin="lower", interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    height, width = image.shape[:2]
    figure.text(0.5, 0.965, name, ha="center", va="center", fontsize=11)
    figure.text(0.5, 0.935, "{}x{}  CAL_VER {}  CRDS_CTX {}".format(
        width, height, header.get("CAL_VER", "?"), header.get("CRDS_CTX", "?")),
        ha="center", va="center", fontsize=9, color="#444444")
    legend = [f"{flag} {count} px" for flag, count in counts.items()]
    figure.text(0.06, 0.1, "DQ: " + ("  ".join(legend) if legend else "no flagged pixels"),
                fontsize=9, va="center")
    x = 0.06
    for flag, colour in OVERLAY:
        figure.add_artist(_swatch(figure, x, 0.04, colour))
        figure.text(x + 0.03, 0.05, flag, fontsize=7, va="center")
        x += 0.03 + 0.0125 * len(flag) + 0.02
    _save(figure, out)


def _swatch(figure, x, y, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 0.022, 0.02, transform=figure.transFigure, figure=figure,
                     color=tuple(c / 255.0 for c in colour))


def write_thumbnail(image, out, size=THUMBNAIL):
    """The image alone, ``size`` pixels on a side (what the batch report embeds)."""
    figure = _figure(size, size)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.set_axis_off()
    axes.imshow(image, origin="lower", interpolation="antialiased", aspect="auto")
    _save(figure, out)


def preview(product, out, thumbnail=None):
    """Write the preview (and the thumbnail) of ``product``; return the flag counts."""
    sci, dq, header = read_product(product)
    image, counts = rgb_image(sci, dq, PIXEL_FLAGS)
    write_preview(image, counts, header, Path(product).name, out)
    if thumbnail:
        write_thumbnail(image, thumbnail)
    return counts


def products_in(folder):
    """The products of a folder to preview: every rate product, else the first kind found."""
    for suffix in PRODUCT_SUFFIXES:
        found = sorted(p for p in Path(folder).glob("*" + suffix) if not p.name.startswith("."))
        if found:
            return found
    return []


def outputs_for(product):
    """``x_rate.fits`` -> (``x_rate.png``, ``x_rate.thumb.png``)."""
    stem = Path(product).name[:-len(".fits")]
    return Path(product).with_name(stem + ".png"), Path(product).with_name(stem + ".thumb.png")


def _describe(out, counts):
    flagged = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no flagged pixels"
    return f"preview: {out} ({flagged})"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m niriss_pipe.runtime.preview",
                                     description="PNG previews of calibrated products.")
    parser.add_argument("product", nargs="?", help="a rate (or cal, i2d) FITS product")
    parser.add_argument("out", nargs="?", help="the PNG to write")
    parser.add_argument("--thumbnail", help="also write a 128-pixel thumbnail here")
    parser.add_argument("--products", metavar="DIR",
                        help="preview every product in DIR, beside it (NAME.png, NAME.thumb.png)")
    args = parser.parse_args(argv)
    if bool(args.products) == bool(args.product and args.out):
        parser.error("give RATE OUT.png, or --products DIR")
    jobs = ([(Path(args.product), Path(args.out), args.thumbnail)] if not args.products else
            [(p, *outputs_for(p)) for p in products_in(args.products)])
    if not jobs:
        print("preview: no product in {} to preview ({})".format(
            args.products, ", ".join(PRODUCT_SUFFIXES)))
        return 0
    failed = 0
    for product, out, thumbnail in jobs:
        try:
            print(_describe(out, preview(product, out, thumbnail)), flush=True)
        except PreviewError as exc:
            print(f"preview: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
