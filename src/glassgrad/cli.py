"""The ``glassgrad`` command line: ``glassgrad demo``, ``glassgrad explain`` and
``glassgrad --version``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glassgrad",
        description="Glass-box automatic differentiation: see your derivatives.")
    from . import __version__, _demo, _explain_cli

    parser.add_argument("--version", action="version", version=f"glassgrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    _demo.add_parser(sub)
    _explain_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
