"""The stable-baselines3 ``VecEnv`` view of a batched engine (imports SB3, hence torch)."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np
from memagent.envs.core import GridEngine, check_choice, check_int
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecTransposeImage, is_vecenv_wrapped
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices


class GridVecEnv(VecEnv):
    """``engine.n`` worlds stepped by one call of the engine, with SB3's semantics.

    - autoreset: a world whose episode ends is reset inside ``step_wait``; the returned
      observation is the first of the new episode and ``infos[i]["terminal_observation"]``
      the last of the old one;
    - the time limit (``max_episode_steps``) truncates, with ``infos[i]["TimeLimit.truncated"]``;
    - per-world info of the engine (``state_id`` in Screens) is in every ``infos[i]``; for a
      world that just finished it describes the terminal state, and the new episode's first
      state is in ``reset_infos[i]`` (as SB3's ``DummyVecEnv`` does);
    - at every episode end ``infos[i]`` has ``is_success`` and ``episode = {"r", "l", "t"}``,
      the statistics SB3's ``Monitor`` would add, so ``ep_rew_mean`` and ``success_rate`` are
      logged without wrapping (``env_is_wrapped(Monitor)`` answers True);
    - ``seed(s)`` seeds the engine's generator with ``s`` at the next ``reset()``.

    ``reuse_obs=True`` (opt-in) hands out an observation array again once nothing references
    it any more, judged by CPython's reference count (``sys.getrefcount``): a 64 x 64 pixel
    batch of 4096 worlds is 50 MB, and reusing its pages instead of faulting in new ones
    doubles the frame rate (``memagent bench envs``, ``vec+reuse``). It depends on interpreter
    internals (reference counting that another Python may elide), hence off by default.
    """

    def __init__(self, engine: GridEngine, max_episode_steps: int, render_mode: str | None = None,
                 reuse_obs: bool = False):
        self.engine = engine
        self.max_episode_steps = check_int("max_episode_steps", max_episode_steps, 1)
        self.render_mode = check_choice("render_mode", render_mode, (None, "rgb_array", "human"))
        super().__init__(engine.n, engine.observation_space, engine.action_space)
        self.ep_return = np.zeros(engine.n, dtype=np.float64)
        self.t_start = time.time()
        self._actions = None
        self._viewer = None
        self.reuse_obs = bool(reuse_obs)
        self._pool: list[np.ndarray] = []     # observation arrays handed out before

    def _obs_array(self) -> np.ndarray:
        """A new observation array; with ``reuse_obs``, one handed out before that nothing
        references any more (refcount: the pool, the loop variable, getrefcount's argument)."""
        if not self.reuse_obs:
            return np.empty((self.num_envs,) + self.observation_space.shape, dtype=np.uint8)
        for arr in self._pool:
            if sys.getrefcount(arr) == 3:
                return arr
        arr = np.empty((self.num_envs,) + self.observation_space.shape, dtype=self.observation_space.dtype)
        if len(self._pool) < 4:
            self._pool.append(arr)
        return arr

    def _infos(self) -> list[dict]:
        arrays = self.engine.info_arrays()
        if not arrays:
            return [{} for _ in range(self.num_envs)]
        (name, values), *rest = arrays.items()
        infos = [{name: v} for v in values.tolist()]
        for name, values in rest:
            for info, v in zip(infos, values.tolist(), strict=True):
                info[name] = v
        return infos

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:
            self.engine.seed(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.engine.reset()
        self.ep_return[:] = 0.0
        self.reset_infos = self._infos()
        return self.engine.observe(out=self._obs_array())

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        eng = self.engine
        reward, terminated, success = eng.step(self._actions)
        self.ep_return += reward
        done = terminated | (eng.t >= self.max_episode_steps)
        obs = eng.observe(out=self._obs_array())
        infos = self._infos()
        if done.any():
            idx = np.flatnonzero(done)
            terminal = obs[idx]                          # a copy: obs[idx] is overwritten below
            t = round(time.time() - self.t_start, 6)
            for j, (i, r, n, trunc, succ) in enumerate(zip(
                    idx.tolist(), np.round(self.ep_return[idx], 6).tolist(), eng.t[idx].tolist(),
                    (~terminated[idx]).tolist(), success[idx].tolist(), strict=True)):
                info = infos[i]                          # keeps the terminal state's info arrays
                info["terminal_observation"] = terminal[j]
                info["TimeLimit.truncated"] = trunc
                info["is_success"] = succ
                info["episode"] = {"r": r, "l": n, "t": t}
            eng.reset(idx)
            self.ep_return[idx] = 0.0
            obs[idx] = eng.observe(idx)
            for name, values in eng.info_arrays().items():   # the new episode's first state
                for i, v in zip(idx.tolist(), values[idx].tolist(), strict=True):
                    self.reset_infos[i] = {name: v}
        if self.render_mode == "human":
            self.render()
        return obs, reward, done, infos

    # -- SB3's VecEnv plumbing ------------------------------------------------------------
    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def get_images(self) -> Sequence[np.ndarray]:
        return [self.engine.render_frame(i) for i in range(self.num_envs)]

    def render(self, mode: str | None = None):
        if (mode or self.render_mode) == "human" and self.render_mode == "human":
            if self._viewer is None:
                from memagent.envs.render import Viewer

                self._viewer = Viewer(type(self.engine).__name__, scale=2)
            self._viewer.show(self.engine.render_frame(0))
            return None
        return super().render(mode)

    def _target(self, attr_name: str):
        if attr_name in ("render_mode", "max_episode_steps"):
            return self
        if hasattr(self.engine, attr_name):
            return self.engine
        raise AttributeError(f"{type(self.engine).__name__} has no attribute {attr_name!r}")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list:
        value = getattr(self._target(attr_name), attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices: VecEnvIndices = None) -> None:
        """Sets the attribute on the engine, i.e. for every world (``indices`` is ignored)."""
        setattr(self.engine, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list:
        method = getattr(self._target(method_name), method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices: VecEnvIndices = None) -> list[bool]:
        """Monitor and TimeLimit are built in (episode statistics and truncation)."""
        built_in = getattr(wrapper_class, "__name__", "") in ("Monitor", "TimeLimit")
        return [built_in for _ in self._get_indices(indices)]


class StepInfos(Sequence):
    """The ``infos`` of one step of a :class:`DeviceGridVecEnv`: ``num_envs`` dicts, each
    built when first read (a world with nothing to report gets an empty dict), so a step
    of 4096 worlds builds the dicts of the worlds that finished and no others."""

    def __init__(self, n: int, built: dict[int, dict]):
        self._n, self._built = n, built

    def __len__(self) -> int:
        return self._n

    def built(self) -> list[dict]:
        """The dicts built so far, the finished worlds' among them, without building more."""
        return list(self._built.values())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i) + (self._n if int(i) < 0 else 0)
        if not 0 <= i < self._n:
            raise IndexError(f"env index {i} out of range for {self._n} envs")
        return self._built.setdefault(i, {})


class DeviceGridVecEnv(GridVecEnv):
    """:class:`GridVecEnv` on a torch engine: observations, rewards and dones are tensors on
    the engine's device (observations ``uint8``, as :class:`GridVecEnv`'s arrays; rewards
    ``float32``; dones ``bool``); actions may be tensors or arrays.

    SB3's semantics as :class:`GridVecEnv` (autoreset, ``terminal_observation`` as a device
    tensor, ``TimeLimit.truncated``, ``is_success``, ``episode``), with ``infos`` a
    :class:`StepInfos` whose dicts are built where read. A step moves to the host only the
    number of finished worlds and their episode statistics.
    """

    def __init__(self, engine: GridEngine, max_episode_steps: int, render_mode: str | None = None):
        if engine.device is None:
            raise ValueError("DeviceGridVecEnv needs an engine on a torch device "
                             "(make_engine(..., device='cpu'|'cuda')); use GridVecEnv for numpy")
        super().__init__(engine, max_episode_steps, render_mode=render_mode)
        self.device = engine.device
        self.ep_return = engine.xp.asarray(self.ep_return)          # float64, on the device

    def _obs_array(self, m: int | None = None):
        """A new ``uint8`` tensor for ``m`` (default all) observations: tile ids and pixels
        fit, as in :class:`GridVecEnv`'s arrays."""
        th = self.engine.xp.th
        return th.empty((m or self.num_envs,) + self.observation_space.shape, dtype=th.uint8,
                        device=self.device)

    def step_wait(self):
        eng, xp = self.engine, self.engine.xp
        reward, terminated, success = eng.step(self._actions)
        self.ep_return += reward
        done = terminated | (eng.t >= self.max_episode_steps)
        obs = eng.observe(out=self._obs_array())
        built: dict[int, dict] = {}
        infos = self._infos() if eng.info_arrays() else StepInfos(self.num_envs, built)
        idx = xp.nonzero(done)                                     # the one sync of a step
        if len(idx):
            terminal = obs[idx]                          # a copy: obs[idx] is overwritten below
            t = round(time.time() - self.t_start, 6)
            stats = xp.to_numpy(xp.th.stack([self.ep_return[idx], eng.t[idx].double(),
                                             (~terminated[idx]).double(), success[idx].double()]))
            for j, (i, r, n, trunc, succ) in enumerate(zip(
                    idx.tolist(), np.round(stats[0], 6).tolist(), stats[1].astype(np.int64).tolist(),
                    (stats[2] > 0).tolist(), (stats[3] > 0).tolist(), strict=True)):
                info = infos[i]
                info["terminal_observation"] = terminal[j]
                info["TimeLimit.truncated"] = trunc
                info["is_success"] = succ
                info["episode"] = {"r": r, "l": n, "t": t}
            eng.reset(idx)
            self.ep_return[idx] = 0.0
            obs[idx] = eng.observe(idx, out=self._obs_array(len(idx)))
            for name, values in eng.info_arrays().items():   # the new episode's first state
                for i, v in zip(idx.tolist(), values[idx].tolist(), strict=True):
                    self.reset_infos[i] = {name: v}
        if self.render_mode == "human":
            self.render()
        return obs, reward, done, infos


def wants_tensor_transpose(venv) -> bool:
    """Whether SB3 would transpose ``venv``'s images to channel-first and its observations
    are tensors (a :class:`DeviceGridVecEnv` of pixels not wrapped yet), so that
    :class:`TensorVecTransposeImage` must do it instead of SB3's numpy ``VecTransposeImage``."""
    if not isinstance(venv, VecEnv) or is_vecenv_wrapped(venv, VecTransposeImage):
        return False
    inner = venv.unwrapped if hasattr(venv, "unwrapped") else venv
    space = venv.observation_space
    return (isinstance(inner, DeviceGridVecEnv) and is_image_space(space)
            and not is_image_space_channels_first(space))


class TensorVecTransposeImage(VecTransposeImage):
    """SB3's ``VecTransposeImage`` (HxWxC -> CxHxW) for a VecEnv of image tensors: a
    ``permute`` on the device, and the terminal observations of finished envs only."""

    @staticmethod
    def transpose_image(image):
        if isinstance(image, np.ndarray):
            return VecTransposeImage.transpose_image(image)
        return image.permute(2, 0, 1) if image.ndim == 3 else image.permute(0, 3, 1, 2)

    def step_wait(self):
        observations, rewards, dones, infos = self.venv.step_wait()
        for i in dones.nonzero().flatten().tolist():
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = self.transpose_image(infos[i]["terminal_observation"])
        return self.transpose_image(observations), rewards, dones, infos

    def reset(self):
        return self.transpose_image(self.venv.reset())
