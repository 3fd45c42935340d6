"""memagent: reinforcement-learning agents with memory.

Importing the package registers the gridworlds with gymnasium (``memagent/TMaze-v0`` and
friends) without importing torch, so ``gym.make("memagent/TMaze-v0")`` works after
``import memagent``.
"""

__version__ = "0.1.0"

from memagent.envs import register_envs as _register_envs

_register_envs()
