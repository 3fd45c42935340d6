"""The ``memagent`` command line.

Every module in :mod:`memagent.commands` that defines ``register(subparsers)`` adds one
subcommand; the handler it sets with ``parser.set_defaults(func=...)`` receives the parsed
arguments and returns an exit code. Heavy imports (torch, SB3) happen inside handlers so
``memagent --help`` and ``memagent envs`` start fast.

Errors a user can fix (``CLIError``, ``ValueError``, ``FileNotFoundError``) are printed as
one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from memagent.utils import tune_malloc


class CLIError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from memagent import __version__, commands

    parser = argparse.ArgumentParser(
        prog="memagent",
        description="Reinforcement-learning agents with memory: train, evaluate, render, bench.",
    )
    parser.add_argument("--version", action="version", version=f"memagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"memagent.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_malloc()  # this process only (see memagent.utils.tune_malloc); MEMAGENT_TUNE_MALLOC=0 turns it off
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `memagent runs --json | head`: the reader left; not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 0
    except KeyboardInterrupt:
        print(f"memagent {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        print(f"memagent {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
