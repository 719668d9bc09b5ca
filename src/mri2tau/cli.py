"""``mri2tau`` command line. Each sub-command lives in the module that does the work.

A module joins the CLI by defining ``register(subparsers)`` that adds its parser and sets
``func`` (called with the parsed ``argparse.Namespace``); list it in ``_COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

_COMMAND_MODULES = (
    "mri2tau.demo.cli",
    "mri2tau.models.cli",
    "mri2tau.synthesize.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(prog="mri2tau", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that stage is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mri2tau`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mri2tau import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
