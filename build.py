#!/usr/bin/env python3
"""niriss-pipe: build pinned, offline JWST/NIRISS pipeline images. See README.md.

Same as the ``niriss-pipe`` console script; kept at the top for ``python build.py``.
"""

import sys

try:
    from niriss_pipe.cli.main import main
except ImportError as exc:  # the package's dependencies are missing
    sys.exit(f"error: {exc}. Install niriss-pipe first: python3 -m pip install -e . "
             "(or run 'make demo', which makes a .venv).")

if __name__ == "__main__":
    sys.exit(main())
