"""``memagent play ENV_ID``: play a gridworld yourself in a pygame window.

Arrow keys or WASD act (absolute moves; in Screens-v0 left/right turn and up goes forward),
R restarts the episode, Q or Escape quits. The window shows the world, the step count, the
reward and the return. ``--keys`` plays a scripted key sequence instead (used by the tests,
which run it with ``SDL_VIDEODRIVER=dummy``).
"""

from __future__ import annotations

import json

# key name -> what it does: an action name of the world, or "reset" / "quit"
KEY_NAMES = {"up": "up", "w": "up", "right": "right", "d": "right", "down": "down", "s": "down",
             "left": "left", "a": "left", "r": "reset", "q": "quit", "escape": "quit"}
# Screens-v0 (turn-based): the same keys mapped to its actions
TURN_KEYS = {"up": "forward", "left": "turn left", "right": "turn right", "down": None}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "play", help="play a gridworld in a pygame window (arrow keys / WASD)",
        description=__doc__.split("\n\n", 1)[1], )
    parser.add_argument("env_id", metavar="ENV_ID", help="a registered id (see `memagent envs`)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode")
    parser.add_argument("--scale", type=int, default=3, help="window pixels per frame pixel")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate (0: as fast as possible)")
    parser.add_argument("--keys", default=None,
                        help="scripted keys instead of the keyboard: a string of w/a/s/d/r/q, "
                        "or comma-separated key names (up,right,down,left,r,q)")
    parser.add_argument("--episodes", type=int, default=None, help="quit after this many episodes")
    parser.add_argument("--max-steps", type=int, default=None, help="quit after this many steps")
    parser.add_argument("--kwargs", default="{}", help="JSON constructor arguments, e.g. '{\"length\": 25}'")
    parser.set_defaults(func=run)


def _scripted(keys: str) -> list[str]:
    """``"ddw"`` or ``"right,right,up"`` (or a mix: ``"dddd,up"``) -> key names."""
    names = []
    for token in (t.strip().lower() for t in keys.split(",")):
        if token in KEY_NAMES:
            names.append(token)
        elif token and set(token) <= set("wasdrq"):
            names += list(token)
        elif token:
            raise ValueError(f"--keys: unknown key {token!r}; use a string of w/a/s/d/r/q or "
                             f"comma-separated names ({', '.join(sorted(KEY_NAMES))})")
    return names


def run(args) -> int:
    import os

    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import gymnasium as gym
    import pygame

    import memagent  # noqa: F401  (registers the ids)
    from memagent.commands.envs import full_id
    from memagent.envs.render import Viewer

    env_id = full_id(args.env_id)
    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as err:
        raise ValueError(f"--kwargs must be a JSON object: {err}") from err
    script = _scripted(args.keys) if args.keys is not None else None
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    names = env.unwrapped.engine.action_names
    turn_based = "forward" in names
    pg_keys = {pygame.K_UP: "up", pygame.K_w: "w", pygame.K_RIGHT: "right", pygame.K_d: "d",
               pygame.K_DOWN: "down", pygame.K_s: "s", pygame.K_LEFT: "left", pygame.K_a: "a",
               pygame.K_r: "r", pygame.K_q: "q", pygame.K_ESCAPE: "escape"}
    by_name = {v: k for k, v in pg_keys.items()}

    viewer = Viewer(f"memagent play {env_id}", scale=args.scale)
    clock = pygame.time.Clock()
    obs, info = env.reset(seed=args.seed)
    steps = episode_steps = episodes = 0
    ret = last_reward = 0.0
    status, running = "", True
    while running:
        if script is not None:
            if not script:
                break
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=by_name[script.pop(0)]))
        command = None
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                running = False
            elif event.type == pygame.KEYDOWN and event.key in pg_keys:
                command = KEY_NAMES[pg_keys[event.key]]
        if command == "quit":
            break
        if command == "reset":
            obs, info = env.reset()
            episode_steps, ret, status = 0, 0.0, "restarted"
        elif command is not None:
            action_name = TURN_KEYS[command] if turn_based else command
            if action_name is not None:
                obs, last_reward, term, trunc, info = env.step(names.index(action_name))
                steps += 1
                episode_steps += 1
                ret += last_reward
                status = ""
                if term or trunc:
                    episodes += 1
                    status = ("success" if info.get("is_success") else "failed") + \
                        (" (time limit)" if trunc and not term else "")
                    print(f"episode {episodes}: return {ret:.2f}, {episode_steps} steps, {status}")
                    if args.episodes is not None and episodes >= args.episodes:
                        running = False
                    obs, info = env.reset()
                    episode_steps, ret = 0, 0.0
                if args.max_steps is not None and steps >= args.max_steps:
                    running = False
        extra = f"  state {info['state_id']}" if "state_id" in info else ""
        viewer.show(env.render(), f"step {episode_steps}  reward {last_reward:+.2f}  "
                                  f"return {ret:+.2f}{extra}  {status}")
        if args.fps > 0:
            clock.tick(args.fps)
    viewer.close()
    env.close()
    print(f"played {steps} steps, {episodes} episodes")
    return 0
