"""``memagent runs``: a table of the run folders under ``--dir`` (default ``runs``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("runs", help="list run folders: env, agent, steps, training and evaluation success",
                              description="List the runs memagent train wrote under a folder.")
    p.add_argument("--dir", default="runs", metavar="DIR", help="folder holding run folders (default runs)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=list_runs)


def collect(root: Path) -> list[dict]:
    """One row per run folder under ``root`` (sorted by name, i.e. env, agent, seed, time)."""
    from memagent import runs

    rows = []
    for folder in sorted(p for p in root.iterdir() if (p / runs.CONFIG_FILE).is_file()):
        try:
            config = json.loads((folder / runs.CONFIG_FILE).read_text())
        except ValueError:
            continue
        state = runs.read_state(folder)
        rows.append({
            "run": folder.name, "env": config.get("env_id", "?"), "agent": config.get("agent", "?"),
            "memory": config.get("memory") or "", "seed": config.get("seed", ""),
            "steps": state.get("steps", 0), "total": config.get("total_timesteps", 0),
            "train_success": state.get("last_success_rate"),
            "train_return": state.get("last_mean_return"),
            "eval_success": state.get("eval_success_rate"), "status": _status(state),
        })
    return rows


def _status(state: dict) -> str:
    """The recorded status; a ``running`` run whose process is gone (on this host) is ``died``."""
    import os
    import socket

    status = state.get("status", "?")
    pid = state.get("pid")
    if status == "running" and pid and state.get("host") == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return "died"
        except PermissionError:
            pass
    return status


def list_runs(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs folder {str(root)!r} does not exist (train writes to runs/ by default; pass --dir)")
    rows = collect(root)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print(f"no runs under {root}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {root}", caption="train: the last 100 training episodes (exploring "
                  "policy; return where the env has no success); eval: final greedy evaluation "
                  "(results.json), blank without --eval-episodes")
    cols = ("run", "env", "agent", "memory", "seed", "steps", "train success/return", "eval success", "status")
    for col in cols:
        table.add_column(col, justify="left" if col in ("run", "env", "agent", "memory", "status") else "right",
                         overflow="fold")
    for r in rows:
        train = ("" if r["train_return"] is None else f"R {r['train_return']:.2f}") \
            if r["train_success"] is None else f"{r['train_success']:.3f}"
        ev = "" if r["eval_success"] is None else f"{r['eval_success']:.3f}"
        table.add_row(r["run"], r["env"], r["agent"], r["memory"], str(r["seed"]),
                      f"{r['steps']:,}/{r['total']:,}", train, ev, r["status"])
    Console(width=220).print(table)
    return 0
