"""``memagent envs [ENV_ID]``: list the registered envs (the gridworlds, then the other
tasks), or describe one."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "envs", help="list the registered gridworlds and tasks (or describe one)",
        description="List every registered memagent env with a one-line description; "
        "with ENV_ID, print that world's documentation.")
    parser.add_argument("env_id", nargs="?", metavar="ENV_ID", help="describe this id")
    parser.set_defaults(func=run)


def full_id(env_id: str) -> str:
    """``env_id`` as registered (``TMaze-v0`` -> ``memagent/TMaze-v0``), or a ValueError."""
    envs = _all_envs()
    for candidate in (env_id, f"memagent/{env_id}"):
        if candidate in envs:
            return candidate
    raise ValueError(f"ENV_ID must be one of {', '.join(envs)}; got {env_id!r}")


def _all_envs() -> dict:
    from memagent.envs import ENVS, OTHER_ENVS

    return {**ENVS, **OTHER_ENVS}


def run(args) -> int:
    envs = _all_envs()
    if args.env_id is None:
        width = max(map(len, envs))
        for env_id, (*_, max_steps, description) in envs.items():
            print(f"{env_id:<{width}}  {description} (time limit {max_steps})")
        return 0
    env_id = full_id(args.env_id)
    import inspect

    import gymnasium as gym

    spec = gym.spec(env_id)
    cls = gym.envs.registration.load_env_creator(spec.entry_point)
    print(f"{env_id}: {envs[env_id][3]}")
    print(f"kwargs {spec.kwargs}, max_episode_steps {spec.max_episode_steps}")
    print(inspect.cleandoc(cls.__doc__ or ""))
    return 0
