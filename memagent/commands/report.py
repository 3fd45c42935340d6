"""``memagent report DIR``: IQM of final success and return over seeds, with 95% bootstrap
intervals, seeds solved and steps/s, per config and env (:mod:`memagent.report`).

Prints the Markdown table and writes ``report.md``, ``report.json`` and ``curves.png`` (the
learning curves with their bands) into DIR (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="IQM over seeds with 95%% bootstrap CIs, seeds solved, steps/s; curves PNG",
        description="Summarise a sweep folder (or any folder of run folders with results.json).")
    p.add_argument("dir", metavar="DIR", help="a memagent sweep folder, or a folder of run folders")
    p.add_argument("--threshold", type=float, default=0.95, metavar="S",
                   help="a seed is solved when its final greedy success is >= S (default 0.95)")
    p.add_argument("--return-threshold", type=float, default=None, metavar="R",
                   help="for envs without a success signal (CartPole): a seed is solved when its "
                        "final mean return is >= R (default: not counted)")
    p.add_argument("--out", default=None, metavar="DIR", help="where report.md/json and curves.png go (default DIR)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    from memagent.report import collect, curves, markdown, plot, summarise

    if not 0 <= args.threshold <= 1:
        raise ValueError(f"--threshold must lie in [0, 1], got {args.threshold}")
    rows = collect(args.dir)
    summary = summarise(rows, threshold=args.threshold, seed=args.seed,
                        return_threshold=args.return_threshold)
    out = Path(args.out or args.dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(summary)
    print(table, end="")
    (out / "report.md").write_text(f"# memagent report: {args.dir}\n\n{table}")
    data = curves(rows, seed=args.seed)
    summary["curves"] = [{"config": g, "env": e, **c} for (g, e), c in data.items()]
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    written = [out / "report.md", out / "report.json"]
    if data:
        written.append(plot(data, out / "curves.png"))
    print(f"memagent report: {len(rows)} runs -> {', '.join(str(w) for w in written)}")
    return 0
