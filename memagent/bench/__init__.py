"""Benchmarks: one module per ``memagent bench NAME``.

Each module defines ``register(subparsers)`` adding its parser (with ``func`` set). Every
benchmark measures memagent against a peer in the same run and reports the ratio; it
prints a table and writes JSON with ``--json FILE``. Shared table/JSON helpers live in
:mod:`memagent.bench.common`.
"""
