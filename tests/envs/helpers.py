"""Shared test helpers: run a scripted policy through make_vec and count successes."""

import numpy as np
from memagent.envs import make_vec


def success_rate(env_id, policy, n_envs=1000, episodes=1000, seed=0, max_steps=10_000, **kwargs):
    """Fraction of the first ``episodes`` finished episodes that succeed."""
    venv = make_vec(env_id, n_envs, seed=seed, **kwargs)
    obs = venv.reset()
    starts = np.ones(n_envs, dtype=bool)
    results = []
    for _ in range(max_steps):
        obs, _, dones, infos = venv.step(policy(obs, starts))
        starts = dones
        results += [infos[i]["is_success"] for i in np.flatnonzero(dones)]
        if len(results) >= episodes:
            return float(np.mean(results[:episodes]))
    raise AssertionError(f"only {len(results)} episodes finished")
