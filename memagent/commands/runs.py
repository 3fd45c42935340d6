"""``memagent runs``: a table of the run folders under ``--dir`` (default ``runs``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("runs", help="list run folders: env, agent, steps, last success rate",
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
        sr = state.get("last_success_rate")
        rows.append({
            "run": folder.name, "env": config.get("env_id", "?"), "agent": config.get("agent", "?"),
            "memory": config.get("memory") or "", "seed": config.get("seed", ""),
            "steps": state.get("steps", 0), "total": config.get("total_timesteps", 0),
            "success": sr, "status": state.get("status", "?"),
        })
    return rows


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

    table = Table(title=f"runs in {root}")
    for col in ("run", "env", "agent", "memory", "seed", "steps", "success", "status"):
        table.add_column(col, justify="right" if col in ("seed", "steps", "success") else "left",
                         overflow="fold")
    for r in rows:
        success = "" if r["success"] is None else f"{r['success']:.3f}"
        table.add_row(r["run"], r["env"], r["agent"], r["memory"], str(r["seed"]),
                      f"{r['steps']:,}/{r['total']:,}", success, r["status"])
    Console(width=200).print(table)
    return 0
