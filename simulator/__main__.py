"""``python -m simulator``: the simulate command on its own (see :mod:`simulator.cli`)."""

from __future__ import annotations

import argparse
import sys

from simulator.cli import add_arguments, run


def main() -> int:
    """Parse the command line and run the simulation."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Drive a dispatch server with simulated workers and customers, "
        "print live progress on stderr and a JSON report at the end.",
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
