"""`python -m engine ...` is the `pfs` command (also what torchrun launches)."""
from __future__ import annotations

import sys

from engine.cli import main

if __name__ == "__main__":
    sys.exit(main())
