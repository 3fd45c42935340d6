"""Playing whole episodes with a trained model, memory included.

:func:`run_episodes` passes the policy's state and ``episode_start`` back on every step, so
memory agents (``MemoryPPO``, sb3-contrib's ``RecurrentPPO``) are evaluated with their memory;
plain SB3 models ignore both. The CLI's ``eval`` and ``render``, the benchmarks and the
learning tests all use it.
"""

from __future__ import annotations

import math

import numpy as np


def raw_reward(venv, rewards):
    """The env's reward before VecNormalize scaled it (``rewards`` when not normalised)."""
    from stable_baselines3.common.vec_env import VecNormalize

    return venv.get_original_reward() if isinstance(venv, VecNormalize) else rewards


def run_episodes(model, venv, n_episodes: int, deterministic: bool = True, on_step=None):
    """Play ``n_episodes`` split evenly over the envs; returns (returns, lengths, successes).

    ``successes`` holds ``info["is_success"]`` per episode (``None`` where the env sets none).
    ``on_step(infos, model)`` runs after every step (rendering uses it).
    """
    n = venv.num_envs
    targets = np.array([(n_episodes + i) // n for i in range(n)])
    counts = np.zeros(n, dtype=int)
    cur_r, cur_l = np.zeros(n), np.zeros(n, dtype=int)
    returns, lengths, successes = [], [], []
    obs, state = venv.reset(), None
    episode_start = np.ones(n, dtype=bool)
    while (counts < targets).any():
        action, state = model.predict(obs, state=state, episode_start=episode_start,
                                      deterministic=deterministic)
        obs, rewards, dones, infos = venv.step(action)
        cur_r += raw_reward(venv, rewards)
        cur_l += 1
        if on_step is not None:
            on_step(infos, model)
        for i in np.flatnonzero(dones):
            if counts[i] < targets[i]:
                ep = infos[i].get("episode")
                returns.append(float(ep["r"]) if ep else float(cur_r[i]))
                lengths.append(int(ep["l"]) if ep else int(cur_l[i]))
                s = infos[i].get("is_success")
                successes.append(None if s is None else bool(s))
            counts[i] += 1
            cur_r[i], cur_l[i] = 0.0, 0
        episode_start = dones
    return returns, lengths, successes


def success_rate(model, venv, n_episodes: int, deterministic: bool = True) -> float:
    """The share of ``n_episodes`` whose last ``info["is_success"]`` was true."""
    successes = run_episodes(model, venv, n_episodes, deterministic)[2]
    return float(np.mean([bool(s) for s in successes]))


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval (normal when scipy is missing)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean, mean
    try:
        from scipy.stats import t

        q = float(t.ppf(0.5 + level / 2, len(x) - 1))
    except ImportError:  # pragma: no cover
        q = 1.959964
    half = q * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half
