"""Curriculum training: switch the training env at given steps, between rollouts.

A memory delay is learnt faster through shorter ones: MemoryPPO with the ``hopfield`` core
learns the T-maze of length 10 in about 40k steps, and the read it learns there already
finds the cue 1000 steps back (docs/policies.md, delay scaling), where training from scratch
at length 1000 mostly stays at chance. :class:`CurriculumCallback` trains an SB3 model on a
sequence of envs (stages) and then on the model's own env, with any SB3 ``learn``::

    from memagent.curriculum import CurriculumCallback, length_stages
    env = make_vec("memagent/TMaze-L1000-v0", 16, seed=0)
    model = MemoryPPO("MlpPolicy", env, policy_kwargs=dict(memory="hopfield"), seed=0)
    stages = length_stages("memagent/TMaze-L1000-v0", [(10, 40_000), (100, 100_000)], n_envs=16, seed=0)
    model.learn(300_000, callback=CurriculumCallback(stages))   # 40k at L=10, 100k at L=100, the rest at 1000

``memagent train --curriculum 10:40000,100:100000`` does the same from the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv


def parse_curriculum(text: str) -> list[list[int]]:
    """``"10:40000,100:100000"`` -> ``[[10, 40000], [100, 100000]]`` (``length:steps`` stages)."""
    stages = []
    for part in text.split(","):
        length, sep, steps = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            stages.append([int(length), int(steps.replace("_", ""))])
        except ValueError:
            raise ValueError(f"--curriculum takes LENGTH:STEPS stages separated by commas, e.g. "
                             f"10:40000,100:100000; got {part.strip()!r} in {text!r}") from None
    return check_curriculum(stages)


def check_curriculum(stages) -> list[list[int]]:
    """``stages`` as a list of ``[length, steps]`` pairs of ints >= 1, or an error naming the bad one."""
    if not isinstance(stages, (list, tuple)):
        raise ValueError(f"curriculum must be a list of [length, steps] pairs, got {stages!r}")
    out = []
    for i, stage in enumerate(stages):
        ok = (isinstance(stage, (list, tuple)) and len(stage) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in stage))
        if not ok:
            raise ValueError(f"curriculum stage {i} must be [length, steps] with both ints >= 1 "
                             f"(e.g. [10, 40000]), got {stage!r}")
        out.append([int(stage[0]), int(stage[1])])
    return out


def length_stages(env_id: str, stages: Sequence[Sequence[int]], n_envs: int, seed: int | None = 0,
                  **env_kwargs) -> list[tuple[int, Callable[[], VecEnv]]]:
    """``(steps, make_env)`` stages of a memagent gridworld at other ``length`` s.

    :param env_id: a memagent id whose world takes ``length`` (the T-mazes).
    :param stages: ``[length, steps]`` pairs, in training order.
    :param n_envs: parallel envs (the model's).
    :param seed: seed of the run; stage ``i`` seeds its envs with ``seed + 1000 * (i + 1)``.
    :param env_kwargs: the world's other constructor arguments.
    """
    from memagent.envs import make_vec

    def maker(i: int, length: int):
        s = None if seed is None else seed + 1000 * (i + 1)
        return lambda: make_vec(env_id, n_envs, seed=s, **{**env_kwargs, "length": length})

    stages = check_curriculum([list(s) for s in stages])
    return [(steps, maker(i, length)) for i, (length, steps) in enumerate(stages)]


class CurriculumCallback(BaseCallback):
    """Train on ``stages`` in order, then on the model's own env.

    The switch happens at the end of the first rollout at or after a stage's last step
    (SB3 collects whole rollouts), never inside one: the new env is reset, and a memory
    model (MemoryPPO) starts every env's memory fresh. Stages are found from the model's
    step count, so ``learn(..., reset_num_timesteps=False)`` and resumed runs pick up in the
    right stage. The envs of the stages are built when their stage starts and closed when
    it ends; the model's own env is never closed.

    :param stages: ``(steps, make_env)`` pairs: ``steps`` env steps (>= 1) on the VecEnv
        ``make_env()`` returns (the model's number of envs, observation and action spaces).
    :param verbose: 1 prints each switch.
    """

    def __init__(self, stages: Sequence[tuple[int, Callable[[], VecEnv]]], verbose: int = 0):
        super().__init__(verbose)
        self.stages = list(stages)
        for i, stage in enumerate(self.stages):
            if not (isinstance(stage, tuple) and len(stage) == 2 and callable(stage[1])
                    and isinstance(stage[0], int) and stage[0] >= 1):
                raise ValueError(f"stages[{i}] must be (steps, make_env) with steps an int >= 1 "
                                 f"and make_env a callable returning a VecEnv, got {stage!r}")
        self.ends = []  # the step at which each stage ends
        total = 0
        for steps, _ in self.stages:
            total += steps
            self.ends.append(total)
        self.stage = None  # index of the current stage; len(stages) = the model's own env
        self.own_env: VecEnv | None = None

    def stage_at(self, step: int) -> int:
        """The stage that trains at ``step`` (``len(stages)``: the model's own env)."""
        return next((i for i, end in enumerate(self.ends) if step < end), len(self.stages))

    def _on_training_start(self) -> None:
        if self.own_env is None:
            self.own_env = self.model.get_env()
        self.stage = None if self.model.get_env() is self.own_env else self.stage
        self._switch(self.stage_at(self.num_timesteps))

    def _on_rollout_end(self) -> None:
        self._switch(self.stage_at(self.num_timesteps))

    def _on_step(self) -> bool:
        return True

    def _switch(self, stage: int) -> None:
        current = len(self.stages) if self.stage is None else self.stage
        if stage == current:
            self.stage = stage
            return
        model, old = self.model, self.model.get_env()
        env = self.own_env if stage == len(self.stages) else self.stages[stage][1]()
        if env.num_envs != model.n_envs:
            raise ValueError(f"curriculum stage {stage} has {env.num_envs} envs but the model "
                             f"trains {model.n_envs}; build the stage's env with n_envs={model.n_envs}")
        if env.observation_space != model.observation_space or env.action_space != model.action_space:
            raise ValueError(f"curriculum stage {stage}: its env's spaces ({env.observation_space}, "
                             f"{env.action_space}) differ from the model's ({model.observation_space}, "
                             f"{model.action_space}); a stage may change the env's size, not its spaces")
        model.env = env
        model._last_obs = env.reset()
        model._last_episode_starts = [True] * env.num_envs
        if hasattr(model, "_last_original_obs"):  # off-policy algorithms keep the raw obs too
            model._last_original_obs = model._last_obs
        if hasattr(model, "_last_memory_state"):  # MemoryPPO: every env starts a new episode
            model._last_memory_state = None
        if old is not self.own_env:
            old.close()
        if self.verbose:
            name = "the model's own env" if stage == len(self.stages) else f"stage {stage}"
            print(f"curriculum: step {self.num_timesteps:,}: training on {name}", flush=True)
        self.stage = stage
