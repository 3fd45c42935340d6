"""CartPole with the velocities hidden: the control task becomes a memory task.

sb3-contrib's ``CartPoleNoVelEnv`` idea (used in its RecurrentPPO benchmarks), here as a
gymnasium ``ObservationWrapper`` on gymnasium's own ``CartPoleEnv``: the policy sees the cart
position ``x`` and the pole angle ``theta`` and must infer both velocities from how they
change over steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv


class CartPoleNoVelEnv(gym.ObservationWrapper):
    """
    ## Description

    Gymnasium's CartPole-v1 (Barto, Sutton & Anderson 1983) with the cart velocity and the
    pole's angular velocity removed from the observation. A memoryless policy sees where the
    pole is but not where it is going; a policy with memory recovers the velocities from
    consecutive observations. sb3-contrib's RecurrentPPO benchmarks use the same task.

    ## Observation

    `Box(2,)` float32: `[x, theta]`, the cart position (-4.8 .. 4.8) and the pole angle
    (-0.418 .. 0.418 rad), CartPole-v1's observation entries 0 and 2.

    ## Action

    `Discrete(2)`: 0 pushes the cart left, 1 pushes it right (as CartPole-v1).

    ## Rewards

    +1 for every step, the terminating one included (as CartPole-v1; `sutton_barto_reward=True`
    gives 0 per step and -1 on failure).

    ## Termination

    Terminates when the pole leans more than 12 degrees or the cart leaves [-2.4, 2.4];
    truncated after 500 steps by the registry's `TimeLimit`. The best return is 500.

    ## Registered configurations

    - `memagent/CartPoleNoVel-v1`: time limit 500, as CartPole-v1.

    :param render_mode: ``None``, ``"rgb_array"`` or ``"human"`` (CartPole's own rendering).
    :param kwargs: CartPoleEnv's other arguments (``sutton_barto_reward``).
    """

    metadata = CartPoleEnv.metadata
    KEPT = np.array([0, 2])  # x and theta of CartPole's [x, x_dot, theta, theta_dot]

    def __init__(self, render_mode: str | None = None, **kwargs) -> None:
        super().__init__(CartPoleEnv(render_mode=render_mode, **kwargs))
        full = self.env.observation_space
        self.observation_space = spaces.Box(full.low[self.KEPT], full.high[self.KEPT],
                                            dtype=full.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.KEPT]
