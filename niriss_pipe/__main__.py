"""``python -m niriss_pipe COMMAND``: the same command line as build.py and niriss-pipe."""

import sys

from niriss_pipe.cli.main import main

sys.exit(main())
