"""Statistics over seeds for a sweep (or any folder of run folders with results.json).

Per config and env: the interquartile mean (IQM) of the final greedy success and of the final
return over seeds, each with a 95% percentile bootstrap confidence interval, the number of
seeds solved (final success >= ``threshold``, or final return >= ``return_threshold`` for envs
without a success signal), the seeds that fell back (reached ``threshold`` at some evaluation
and ended more than :data:`FELL_BACK_MARGIN` below their best), and training steps/s; per
config with two or more envs that report success, the same aggregated over those envs with a
*stratified* bootstrap (seeds resampled within each env), as Agarwal et al. 2021 ("Deep RL at
the edge of the statistical precipice") recommend. Envs without a success signal (CartPole's
return) stay out of that row: returns of different envs share no scale, and pooled with
success rates they mean nothing. The resampling is :func:`scipy.stats.bootstrap` (several
samples are resampled independently, which is the stratification). Learning curves: the IQM of greedy success at each evaluation
step with its 95% band.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

N_RESAMPLES = 2000
FELL_BACK_MARGIN = 0.05
"""a solved seed fell back when its final success is more than this below its best evaluation."""


def iqm(x, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (``scipy.stats.trim_mean(x, 0.25)``)."""
    from scipy.stats import trim_mean

    return trim_mean(x, 0.25, axis=axis)


def iqm_ci(samples: list[list[float]], level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """IQM of all values pooled, and its stratified bootstrap interval.

    :param samples: one list of per-seed values per stratum (env); each is resampled apart.
    :return: ``(iqm, low, high)``; the interval is the point itself when every value is equal
        or there is one value in all.
    """
    from scipy.stats import bootstrap

    samples = [np.asarray(s, dtype=float) for s in samples if len(s)]
    pooled = np.concatenate(samples)
    point = float(iqm(pooled))
    if pooled.size < 2 or np.all(pooled == pooled[0]):
        return point, point, point

    def stat(*xs, axis=-1):
        return iqm(np.concatenate(xs, axis=axis), axis=axis)

    res = bootstrap(tuple(samples), stat, n_resamples=N_RESAMPLES, confidence_level=level,
                    method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return point, float(lo), float(hi)


def collect(root: str | Path) -> list[dict]:
    """Every ``results.json`` under ``root`` (recursively), with ``run_dir`` added.

    :raises FileNotFoundError: ``root`` does not exist or holds no results.
    """
    from memagent.experiment import RESULTS_FILE

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{str(root)!r} does not exist (pass a sweep folder or a folder of runs)")
    rows = []
    for path in sorted(root.rglob(RESULTS_FILE)):
        try:
            r = json.loads(path.read_text())
        except ValueError:
            continue
        if "final" in r:
            rows.append({**r, "run_dir": str(path.parent)})
    if not rows:
        raise FileNotFoundError(f"no results.json under {str(root)!r}: train with --eval-episodes N "
                                "or run memagent sweep --out DIR")
    return rows


def _group(r: dict) -> str:
    """A config's label: its grid point (``memory=gru, agent_kwargs.learning_rate=0.001``)."""
    if r.get("params"):
        return ", ".join(f"{k}={v}" for k, v in r["params"].items())
    if "group" in r:
        return r["group"]
    mem = f" ({r['memory']})" if r.get("memory") else ""
    return f"{r['agent']}{mem}"


def summarise(rows: list[dict], threshold: float = 0.95, seed: int = 0,
              return_threshold: float | None = None) -> dict:
    """``{"cells": [...per config and env...], "configs": [...aggregated over envs...]}``.

    :param threshold: a seed is solved when its final greedy success is >= this.
    :param return_threshold: for envs without a success signal (CartPole), a seed is solved
        when its final mean return is >= this; ``None``: such cells count no seeds solved.
    """
    by_cell: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by_cell[(_group(r), r["env_id"])].append(r)
    cells, by_config = [], defaultdict(list)
    for (group, env), runs_ in sorted(by_cell.items()):
        runs_ = sorted(runs_, key=lambda r: r.get("seed", 0))
        cell = _stats(group, env, [runs_], threshold, seed, return_threshold)
        cell["params"] = runs_[0].get("params", {})
        cells.append(cell)
        if cell["success_iqm"] is not None:
            by_config[group].append(runs_)
    configs = [_stats(group, f"all {len(strata)} envs with success", strata, threshold, seed, return_threshold)
               for group, strata in by_config.items() if len(strata) > 1]
    return {"threshold": threshold, "return_threshold": return_threshold, "cells": cells, "configs": configs}


def fell_back(run: dict, threshold: float) -> bool:
    """Whether a run reached ``threshold`` success at some evaluation (or at the end) and ended
    more than :data:`FELL_BACK_MARGIN` below its best: the collapse the no-collapse goal rules out."""
    final = run["final"].get("success_rate")
    if final is None:
        return False
    best = max([final] + [p["success_rate"] for p in run.get("curve", []) if p.get("success_rate") is not None])
    return best >= threshold and final < best - FELL_BACK_MARGIN


def _stats(group: str, env: str, strata: list[list[dict]], threshold: float, seed: int,
           return_threshold: float | None = None) -> dict:
    succ = [[r["final"]["success_rate"] for r in s if r["final"].get("success_rate") is not None] for s in strata]
    rets = [[r["final"]["mean_return"] for r in s] for s in strata]
    rates = [r["steps_per_second"] for s in strata for r in s if r.get("steps_per_second")]
    flat = [r for s in strata for r in s]
    out = {"config": group, "env": env, "seeds": len(flat),
           "steps": int(np.median([r["steps"] for r in flat])),
           "steps_per_second": float(np.median(rates)) if rates else None}
    if any(succ):
        m, lo, hi = iqm_ci(succ, seed=seed)
        out.update(success_iqm=m, success_ci=[lo, hi],
                   solved=sum(v >= threshold for s in succ for v in s),
                   fell_back=sum(fell_back(r, threshold) for r in flat))
    else:
        out.update(success_iqm=None, success_ci=None, fell_back=None,
                   solved=None if return_threshold is None else
                   sum(v >= return_threshold for s in rets for v in s))
    m, lo, hi = iqm_ci(rets, seed=seed)
    out.update(return_iqm=m, return_ci=[lo, hi])
    return out


def curves(rows: list[dict], seed: int = 0) -> dict[tuple[str, str], dict]:
    """Per (config, env): steps, and the IQM of greedy success (else return) with its band."""
    by_cell: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("curve"):
            by_cell[(_group(r), r["env_id"])].append(r)
    out = {}
    for key, runs_ in sorted(by_cell.items()):
        metric = "success_rate" if runs_[0]["curve"][0].get("success_rate") is not None else "mean_return"
        steps = sorted({p["step"] for r in runs_ for p in r["curve"]})
        mid, lo, hi = [], [], []
        for step in steps:
            # each seed's value at its latest evaluation at or before `step`
            vals = [_at(r["curve"], step, metric) for r in runs_]
            vals = [v for v in vals if v is not None]
            m, a, b = iqm_ci([vals], seed=seed)
            mid.append(m), lo.append(a), hi.append(b)
        out[key] = {"metric": metric, "steps": steps, "iqm": mid, "low": lo, "high": hi}
    return out


def _at(curve: list[dict], step: int, metric: str):
    before = [p for p in curve if p["step"] <= step]
    return before[-1][metric] if before else None


def _fmt(v, ci=None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    text = f"{v:.{digits}f}"
    return text + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def markdown(summary: dict) -> str:
    """The table: one row per config and env, then one per config over its envs with success."""
    t, rt = summary["threshold"], summary.get("return_threshold")
    solved_by = f"success >= {t:g}" + ("" if rt is None else f"; return >= {rt:g} without success")
    head = (f"| config | env | seeds | steps | IQM success [95% CI] | solved ({solved_by}) | fell back | "
            "IQM return [95% CI] | steps/s |\n|---|---|---:|---:|---|---:|---:|---|---:|\n")
    rows = []
    for c in summary["cells"] + summary["configs"]:
        solved = "n/a" if c["solved"] is None else f"{c['solved']}/{c['seeds']}"
        sps = "n/a" if c["steps_per_second"] is None else f"{c['steps_per_second']:,.0f}"
        back = "n/a" if c.get("fell_back") is None else f"{c['fell_back']}/{c['seeds']}"
        rows.append(f"| {c['config']} | {c['env']} | {c['seeds']} | {c['steps']:,} | "
                    f"{_fmt(c['success_iqm'], c['success_ci'])} | {solved} | {back} | "
                    f"{_fmt(c['return_iqm'], c['return_ci'])} | {sps} |")
    note = ("\nIQM: interquartile mean over seeds of the final greedy success (return) on fresh "
            "episodes; 95% percentile bootstrap CI (stratified over envs in the 'all N envs with success' rows, which leave out envs without a success signal). Fell back: "
            f"seeds that reached success {t:g} during training and ended more than "
            f"{FELL_BACK_MARGIN:g} below their best.\n")
    return head + "\n".join(rows) + "\n" + note


def plot(curve_data: dict, out: str | Path) -> Path:
    """Learning curves with their 95% bands, one panel per env (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({env for _, env in curve_data})
    if not envs:
        raise ValueError("no learning curves to plot: train with --eval-every K")
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for (group, e), c in curve_data.items():
            if e != env:
                continue
            ax.plot(c["steps"], c["iqm"], label=group)
            ax.fill_between(c["steps"], c["low"], c["high"], alpha=0.25)
            ax.set_ylabel("greedy success (IQM)" if c["metric"] == "success_rate" else "greedy return (IQM)")
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
