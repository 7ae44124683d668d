"""`pfs --help` and argument errors answer before torch loads (0.13 s against 2.9-3.5 s with
torch, measured on the 2-core VM under two grid lanes): checked by what is imported, which does
not depend on the machine's load, rather than by a wall-clock limit."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from engine.cli import main
try:
    status = main({argv!r})
except SystemExit as exc:  # --help exits from inside argparse
    status = exc.code
heavy = sorted(m for m in ("torch", "numpy", "torch_pruning", "torchvision") if m in sys.modules)
print("HEAVY", ",".join(heavy), "STATUS", status)
"""


@pytest.mark.parametrize("argv", [["--help"], ["learn", "--help"], ["experiment", "--help"], ["baseline", "--help"],
                                  ["train", "--help"], ["run", "--help"], ["report", "--help"],
                                  ["learn"], ["bogus"], ["learn", "resnet20", "--bogus"],
                                  ["experiment", "baselines"]])
def test_help_and_argument_errors_do_not_import_torch(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                          timeout=120)
    line = next(x for x in done.stdout.splitlines() if x.startswith("HEAVY"))
    assert line.split()[1] == "STATUS", f"pfs {' '.join(argv)} imported {line.split()[1]}"
    if "--help" not in argv:
        assert line.endswith("STATUS 2") and done.stderr.startswith("pfs: error:")
