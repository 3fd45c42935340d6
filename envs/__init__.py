"""Recall-dependent gridworlds (installed as ``memagent.envs``).

Each world is one batched numpy engine (:class:`memagent.envs.core.GridEngine`) with two
views: a gymnasium ``Env`` (the engine with one world; ``gym.make("memagent/TMaze-v0")``)
and an SB3 ``VecEnv`` (:func:`make_vec`, the engine with ``n_envs`` worlds).
``register_envs()`` runs on ``import memagent``; this package does not import torch (only
:func:`make_vec` does, through stable-baselines3).
"""

from __future__ import annotations

NAMESPACE = "memagent"

#: id -> (entry point, kwargs, max_episode_steps, one-line description)
ENVS: dict[str, tuple[str, dict, int, str]] = {
    "memagent/TMaze-v0": (
        "memagent.envs.tmaze:TMazeEnv", {"length": 10}, 30,
        "passive T-maze: cue shown only at the start, choose its door 10 cells later"),
    "memagent/TMaze-L25-v0": (
        "memagent.envs.tmaze:TMazeEnv", {"length": 25}, 60,
        "passive T-maze, corridor of 25 cells"),
    "memagent/TMaze-L100-v0": (
        "memagent.envs.tmaze:TMazeEnv", {"length": 100}, 210,
        "passive T-maze, corridor of 100 cells"),
    "memagent/TMaze-L1000-v0": (
        "memagent.envs.tmaze:TMazeEnv", {"length": 1000}, 2010,
        "passive T-maze, corridor of 1000 cells"),
    "memagent/TMaze-Random-v0": (
        "memagent.envs.tmaze:TMazeEnv", {"length": (5, 20)}, 50,
        "passive T-maze whose length (5..20) is drawn per episode: counting steps cannot solve it"),
    "memagent/KeyDoor-v0": (
        "memagent.envs.keydoor:KeyDoorEnv", {}, 42,
        "see a key of 1 of 3 colours, cross 10 columns of distractors, open the door of its colour"),
    "memagent/RecallSequence-v0": (
        "memagent.envs.recall:RecallSequenceEnv", {}, 44,
        "pass 3 binary cues in order, then answer them at 3 junctions in the same order"),
    "memagent/Screens-v0": (
        "memagent.envs.screens:ScreensEnv", {}, 100,
        "MAN 4.2: 4x3 room, state = (position, direction), info['state_id'], noisy screens"),
}


#: Tasks that are not gridworlds (no batched engine: build them with ``gym.make`` or SB3's
#: ``make_vec_env``, not :func:`make_vec`), in the same format as :data:`ENVS`.
OTHER_ENVS: dict[str, tuple[str, dict, int, str]] = {
    "memagent/CartPoleNoVel-v1": (
        "memagent.envs.cartpole:CartPoleNoVelEnv", {}, 500,
        "CartPole-v1 with the velocities hidden (x and theta only): balancing needs memory"),
}


def register_envs() -> None:
    """Register the ``memagent/...`` ids with gymnasium (idempotent)."""
    import gymnasium as gym

    for env_id, (entry_point, kwargs, max_steps, _) in {**ENVS, **OTHER_ENVS}.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs,
                         max_episode_steps=max_steps)


def _env_class(env_id: str):
    import gymnasium as gym

    register_envs()
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise ValueError(f"env_id must be one of {', '.join(ENVS)}; got {env_id!r}") from err
    cls = gym.envs.registration.load_env_creator(spec.entry_point)
    if not hasattr(cls, "engine_cls"):
        raise ValueError(f"env_id must be a memagent gridworld ({', '.join(ENVS)}); got {env_id!r} "
                         "(build other envs with gymnasium.make or SB3's make_vec_env)")
    return spec, cls


def make_engine(env_id: str, n_envs: int, seed: int | None = None, *, device=None, **kwargs):
    """The batched engine of ``env_id`` with ``n_envs`` worlds (the registered kwargs, updated
    by ``kwargs``), reset; on numpy (``device=None``) or on a torch ``device`` (see
    :mod:`memagent.envs.backend`: the same trajectories for a seed)."""
    from memagent.envs.backend import get_backend

    get_backend(device)     # a bad device fails before the worlds are built
    spec, cls = _env_class(env_id)
    engine = cls.engine_cls(n_envs, seed=seed, **{**spec.kwargs, **kwargs}).to(device)
    engine.reset()
    return engine


def make_vec(env_id: str, n_envs: int, seed: int | None = None, *,
             max_episode_steps: int | None = None, render_mode: str | None = None,
             reuse_obs: bool = False, device=None, **kwargs):
    """An SB3 ``VecEnv`` of ``n_envs`` worlds of ``env_id``, backed by one batched engine.

    :param env_id: a registered memagent id (``memagent envs`` lists them).
    :param n_envs: number of worlds.
    :param seed: seed of the engine's generator (the same seed gives the same trajectories).
    :param max_episode_steps: time limit; default: the registered one, or the world's
        recommended limit when ``kwargs`` change it (e.g. another ``length``).
    :param render_mode: ``None``, ``"rgb_array"`` or ``"human"`` (shows world 0).
    :param reuse_obs: reuse observation arrays nobody references any more (opt-in; see
        :class:`memagent.envs.vec.GridVecEnv`).
    :param device: ``None`` (default): numpy arrays on the host (:class:`GridVecEnv`); a
        torch device (``"cpu"``, ``"cuda"``, ``torch.device``): the engine on that device and
        observations, rewards and dones as its tensors (:class:`DeviceGridVecEnv`), the same
        trajectories for a seed.
    :param kwargs: the world's constructor arguments (``obs_mode``, ``length``, ...).
    """
    from memagent.envs.vec import DeviceGridVecEnv, GridVecEnv

    if device is not None and reuse_obs:
        raise ValueError("reuse_obs is for the numpy VecEnv (device=None); drop reuse_obs "
                         "with device=...")
    engine = make_engine(env_id, n_envs, seed=seed, device=device, **kwargs)
    limit = max_episode_steps or engine.max_steps
    if device is None:
        venv = GridVecEnv(engine, limit, render_mode=render_mode, reuse_obs=reuse_obs)
    else:
        venv = DeviceGridVecEnv(engine, limit, render_mode=render_mode)
    if seed is not None:
        venv.seed(seed)
    return venv


__all__ = ["ENVS", "OTHER_ENVS", "make_engine", "make_vec", "register_envs"]
