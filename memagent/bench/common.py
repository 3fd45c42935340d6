"""Table printing, JSON output and timing helpers shared by every benchmark."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def machine() -> dict:
    """What the numbers were measured on."""
    import os

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def rate(fn: Callable[[], int], min_time: float = 0.5, warmup: int = 1) -> float:
    """Items per second of ``fn`` (which returns how many items one call did), timed
    over repeated calls for at least ``min_time`` seconds after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    n, start = 0, time.perf_counter()
    while True:
        n += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return n / elapsed


def format_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A Markdown table (pastes straight into the README)."""

    def fmt(v):
        if isinstance(v, float):
            if v != v:  # nan
                return "-"
            if abs(v) >= 1000:
                return f"{v:,.0f}"
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)) + " |"  # noqa: E731
    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def report(name: str, headers: Sequence[str], rows: Sequence[Sequence],
           json_path: str | None = None, extra: dict | None = None) -> str:
    """Print the table and, if asked, write ``{"bench", "machine", "headers", "rows", ...}``."""
    table = format_table(headers, rows)
    print(table)
    if json_path:
        payload = {"bench": name, "machine": machine(), "headers": list(headers),
                   "rows": [list(r) for r in rows], **(extra or {})}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(payload, indent=2, default=float))
    return table


def add_common_args(parser) -> None:
    """``--json FILE`` and ``--seed`` for every benchmark."""
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice")
