"""niriss-pipe: pinned, offline JWST/NIRISS calibration pipeline images.

This top-level module must stay free of third-party imports: the ``runtime``
subpackage is copied into every image and imported there with only the
image's own Python environment (jwst, crds, numpy) available.
"""

__version__ = "0.1.0"
