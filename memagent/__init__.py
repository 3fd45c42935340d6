"""memagent: reinforcement-learning agents with memory.

Importing the package registers the gridworlds with gymnasium (``memagent/TMaze-v0`` and
friends) without importing torch, so ``gym.make("memagent/TMaze-v0")`` works after
``import memagent``. The public classes live at the top level, as SB3 users look for them
(``from memagent import MemoryPPO`` like ``from sb3_contrib import RecurrentPPO``); each is
imported on first use (a module ``__getattr__``), so ``import memagent`` stays light.
"""

__version__ = "0.1.0"

from memagent.envs import register_envs as _register_envs

_register_envs()

#: public name -> the module that defines it
_LAZY = {
    # agents and policies
    "MemoryPPO": "memagent.agents.memory_ppo",
    "MemoryActorCriticPolicy": "memagent.policies",
    "MemoryActorCriticCnnPolicy": "memagent.policies",
    "ManAgent": "memagent.agents.man",
    "QLearning": "memagent.agents.qlearning",
    "with_memory": "memagent.history",
    "ObservationHistory": "memagent.history",
    "HopfieldExtractor": "memagent.history",
    "CurriculumCallback": "memagent.curriculum",
    # memories
    "MemoryCore": "memagent.memory.core",
    "register_core": "memagent.memory.core",
    "make_core": "memagent.memory.core",
    "ClassQueueMemory": "memagent.memory.replay",
    "ClassBalancedReplayBuffer": "memagent.memory.replay",
    "CVAEMemory": "memagent.memory.generative",
    "LambdaHotVAEMemory": "memagent.memory.generative",
    "NMNLayer": "memagent.memory.nmn",
    "retrieve": "memagent.memory.hopfield",
    "UniversalHopfield": "memagent.memory.hopfield",
    "ModernHopfield": "memagent.memory.hopfield",
    "ClassicalHopfield": "memagent.memory.classical",
    "SparseDistributedMemory": "memagent.memory.classical",
    "DenseAssociativeMemory": "memagent.memory.dam",
    # envs and experiments
    "make_vec": "memagent.envs",
    "Agent": "memagent.agent",
    "register_agent": "memagent.agent",
    "get_agent": "memagent.agent",
    "load_agent": "memagent.agent",
    "TrainConfig": "memagent.config",
    "run_experiment": "memagent.experiment",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memagent' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
