"""``memagent cores``: the registered memory cores and their parameters (:mod:`memagent.memory.core`)."""

from __future__ import annotations

import argparse
import inspect
import json


def register(subparsers) -> None:
    p = subparsers.add_parser("cores", help="list the memory cores (--memory) and their parameters",
                              description="The memory cores memory-ppo can use, from the one registry.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=list_cores)


def list_cores(args: argparse.Namespace) -> int:
    from memagent.memory.core import core_names, get_core

    rows = []
    for name in core_names():
        spec = get_core(name)
        params = {p.name: (None if p.default is inspect.Parameter.empty else p.default)
                  for p in spec.params().values()}
        rows.append({"name": name, "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
                     "width": spec.width, "params": params, "description": spec.description,
                     "more_kwargs": spec.takes_any_kwargs()})
    if args.json:
        print(json.dumps(rows, indent=2, default=repr))
        return 0
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["params"].items())
        more = ", **kwargs" if r["more_kwargs"] else ""
        print(f"{r['name']:10s} {r['class']}({params}{more})\n           {r['description']}")
    return 0
