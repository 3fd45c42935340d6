"""``memagent bench sweep``: the wall time of one sweep run P trials at a time against 1 at a
time, measured in the same run on the same trials (the ratio is the parallel speed-up).

Both sweeps start their own local Ray (its start-up is inside both times), run the same
configs x seeds into separate temporary folders, and the trials train with one torch
thread each. The ideal ratio is P; on a machine with P cores and nothing else running,
about 0.9 P is what the cores allow (the driver, Ray and the evaluations share them).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from memagent.bench.common import add_common_args, report


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="sweep wall time, P trials at a time vs 1, same run",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="memagent/TMaze-v0", help="env id (default memagent/TMaze-v0)")
    p.add_argument("--grid", action="append", default=None, metavar="KEY=V1,V2",
                   help="the configs (default: memory=gru,hopfield)")
    p.add_argument("--seeds", default="0-2", help="seeds (default 0-2)")
    p.add_argument("--steps", type=int, default=None, help="steps per trial (default: the preset's)")
    p.add_argument("--parallel", type=int, default=2, help="trials at a time in the parallel sweep (default 2)")
    p.add_argument("--eval-episodes", type=int, default=100, help="final greedy episodes per trial")
    p.add_argument("--eval-every", type=int, default=0, metavar="K", help="greedy evaluations every K steps (default 0: none)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="keep both sweep folders under DIR (p1/, pP/) for memagent report")
    add_common_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from memagent.sweep import parse_grid, parse_seeds, plan, run_sweep

    base = {"eval_episodes": args.eval_episodes, "eval_every": args.eval_every, "threads": 1}
    if args.steps:
        base["total_timesteps"] = args.steps
    trials = plan(base, parse_grid(args.grid or ["memory=gru,hopfield"]), [args.env], parse_seeds(args.seeds))
    walls, finals = {}, {}
    with tempfile.TemporaryDirectory(prefix="memagent-bench-sweep-") as tmp:
        if args.keep:
            tmp = args.keep
        for parallel in (1, args.parallel):
            out = Path(tmp) / f"p{parallel}"
            t0 = time.perf_counter()
            result = run_sweep(out, trials, parallel=parallel, say=lambda msg: None)
            walls[parallel] = time.perf_counter() - t0
            if result["failed"]:
                raise ValueError(f"trials failed: {result['failed']}")
            finals[parallel] = {t.trial_id: json.loads((t.run_dir(out) / "results.json").read_text())
                                for t in trials}
    same = all(finals[1][k]["final"] == finals[args.parallel][k]["final"] for k in finals[1])
    rate = {p: sum(r["steps_per_second"] for r in f.values()) / len(f) for p, f in finals.items()}
    headers = ["trials", "at a time", "wall (s)", "mean trial steps/s", "speed-up vs 1 at a time"]
    rows = [[len(trials), p, walls[p], rate[p], walls[1] / walls[p]] for p in (1, args.parallel)]
    report("sweep", headers, rows, args.json,
           extra={"env": args.env, "trials": [t.trial_id for t in trials],
                  "same_results": same, "speedup": walls[1] / walls[args.parallel]})
    print(f"same final results in both sweeps: {same}")
    return 0
