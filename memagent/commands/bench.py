"""``memagent bench NAME``: every module in :mod:`memagent.bench` with ``register``."""

from __future__ import annotations

import importlib
import pkgutil


def register(subparsers) -> None:
    from memagent import bench

    parser = subparsers.add_parser(
        "bench", help="benchmarks that compare memagent with a peer in the same run",
        description="Benchmarks: each prints a Markdown table and compares with a peer "
        "measured in the same run (the ratio column).",
    )
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        if info.name == "common":
            continue
        module = importlib.import_module(f"memagent.bench.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
