"""The memory-core interface and the one registry of cores (name -> class, with its parameters).

A :class:`MemoryCore` carries a state across time steps and forgets it where an episode
starts; it maps a whole sequence at once, ``x (T, B, F) -> y (T, B, H)``. A core registers
itself where it is defined::

    from memagent.memory.core import MemoryCore, register_core

    @register_core("toy", width="hidden_size")
    class ToyCore(MemoryCore):
        def __init__(self, input_dim: int, hidden_size: int = 16): ...

and is then known to the policy (``policy_kwargs=dict(memory="toy")``), the CLI
(``memagent train --memory toy``, ``memagent cores``), the benchmarks and the docs. Nothing
else lists cores. Where they come from, on the first lookup:

- every module of :mod:`memagent.memory` whose source contains ``@register_core(``;
- installed packages' entry points in the group ``memagent.cores`` (the module is imported);
- a ``"module:name"`` core name imports ``module`` first (a core outside any package, e.g.
  ``memagent train --memory my_cores:toy`` with ``my_cores.py`` on the path).

A core's parameter schema is read from its constructor (every argument after ``input_dim``,
with its default) and its docstring's ``:param:`` lines; :func:`check_memory_kwargs` rejects a
key the constructor does not take.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

State = tuple[Tensor, ...]


class MemoryCore(nn.Module):
    """Carries a state across time steps; resets where an episode starts.

    Subclasses set ``input_dim``, ``output_dim`` and ``state_batch_dim`` (the batch
    dimension of every tensor in their state) and implement :meth:`initial_state` and
    :meth:`forward`.
    """

    input_dim: int
    output_dim: int
    state_batch_dim: int = 0

    def initial_state(self, batch_size: int, device=None) -> State:
        """The state before the first step of an episode, for ``batch_size`` envs."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, State]:
        """Map a sequence.

        :param x: inputs ``(T, B, F)``.
        :param state: the state before step 0 (from :meth:`initial_state` or a previous call).
        :param episode_starts: ``(T, B)``, 1 where step ``t`` of env ``b`` starts an episode:
            the core forgets everything before it.
        :return: outputs ``(T, B, H)`` and the state after step ``T - 1``.
        """
        raise NotImplementedError

    @classmethod
    def parameter_names(cls) -> tuple[str, ...] | None:
        """The keyword parameters ``memory_kwargs`` may set (those of ``__init__`` after
        ``input_dim``); ``None`` when ``__init__`` takes ``**kwargs`` it cannot name."""
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, input_dim
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def inspect(self) -> dict[str, np.ndarray]:
        """What the last forward read, for rendering; ``{}`` if nothing."""
        return {}

    def select_state(self, state: State, index: Tensor) -> State:
        """The state of the envs ``index`` (a 1-D long tensor), e.g. for a minibatch of envs."""
        return tuple(s.index_select(self.state_batch_dim, index) for s in state)

    def _check_input(self, x: Tensor, episode_starts: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"{type(self).__name__} expects x of shape (T, B, {self.input_dim}), "
                             f"got {tuple(x.shape)}")
        if episode_starts.shape != x.shape[:2]:
            raise ValueError(f"episode_starts must have shape (T, B) = {tuple(x.shape[:2])}, "
                             f"got {tuple(episode_starts.shape)}")


@dataclass(frozen=True)
class CoreParam:
    """One constructor parameter of a core."""

    name: str
    default: Any
    """the default value; :data:`inspect.Parameter.empty` when it has none."""
    annotation: str
    doc: str


@dataclass(frozen=True)
class CoreSpec:
    """A registered core."""

    name: str
    cls: type
    width: str | None
    """the parameter that sets the output size (benchmarks size every core alike with it)."""

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.split("\n\n")[0].replace("\n", " ")

    def params(self) -> dict[str, CoreParam]:
        """The core's own parameters (constructor arguments after ``input_dim``)."""
        docs = _param_docs(inspect.getdoc(self.cls) or "")
        out = {}
        for p in list(inspect.signature(self.cls.__init__).parameters.values())[2:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            out[p.name] = CoreParam(p.name, p.default, "" if ann is p.empty else str(ann),
                                    docs.get(p.name, ""))
        return out

    def takes_any_kwargs(self) -> bool:
        """Whether the core cannot name every parameter it takes (:meth:`MemoryCore.parameter_names`)."""
        return self.cls.parameter_names() is None


_CORES: dict[str, CoreSpec] = {}
_discovered = False


def register_core(name: str, width: str | None = None):
    """Class decorator: register a :class:`MemoryCore` subclass under ``name``.

    :param name: the name users pass (``memory="name"``, ``--memory name``).
    :param width: the constructor parameter that sets the output size, if any.
    :raises ValueError: ``name`` is already taken by another class, or the class is no core.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"core name must be letters, digits, '_', '.' or '-', got {name!r}")

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, MemoryCore)):
            raise ValueError(f"register_core({name!r}) needs a MemoryCore subclass, got {cls!r}")
        old = _CORES.get(name)
        if old is not None and (old.cls.__module__, old.cls.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"memory core {name!r} is already registered by "
                             f"{old.cls.__module__}.{old.cls.__qualname__}; pick another name")
        _CORES[name] = CoreSpec(name, cls, width)
        return cls

    return decorate


def _discover() -> None:
    """Import the modules that register cores (once): memagent.memory's, then entry points."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    import memagent.memory as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        spec = importlib.util.find_spec(f"{package.__name__}.{info.name}")
        origin = getattr(spec, "origin", None)
        try:
            with open(origin, encoding="utf-8") as fh:
                registers = "@register_core(" in fh.read()
        except (OSError, TypeError):
            continue
        if registers:
            importlib.import_module(f"{package.__name__}.{info.name}")
    from importlib.metadata import entry_points

    for ep in entry_points(group="memagent.cores"):
        importlib.import_module(ep.value.split(":")[0])


def core_names() -> list[str]:
    """The names of every registered core, sorted."""
    _discover()
    return sorted(_CORES)


def get_core(name: str) -> CoreSpec:
    """The registry entry of ``name`` (``"module:name"`` imports ``module`` first).

    :raises ValueError: no such core; the message lists the known ones.
    """
    _discover()
    if name not in _CORES and ":" in name:
        module, _, short = name.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"memory core {name!r}: cannot import {module!r} ({err}); put the "
                             "module on the Python path (PYTHONPATH) or install its package") from None
        if short in _CORES:
            return _CORES[short]
        raise ValueError(f"memory core {name!r}: {module} registers no core {short!r}; "
                         f"known cores: {', '.join(sorted(_CORES))}")
    if name not in _CORES:
        raise ValueError(f"unknown memory core {name!r}; known cores: {', '.join(sorted(_CORES))} "
                         "(or memory=None for no memory)")
    return _CORES[name]


def check_memory_kwargs(name: str, kwargs: dict) -> None:
    """Reject keys the core's constructor does not take, naming the known ones.

    :raises ValueError: an unknown key (or an unknown core).
    """
    spec = get_core(name)
    _check_kwargs(repr(spec.name), spec.cls, kwargs)


def _check_kwargs(label: str, cls: type, kwargs: dict) -> None:
    known = cls.parameter_names()
    if known is None:
        return
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        raise ValueError(f"bad memory_kwargs for the {label} core: it has no parameter "
                         f"{', '.join(map(repr, unknown))}; its memory_kwargs are {', '.join(known) or '(none)'}")


def make_core(name: str | type[MemoryCore], input_dim: int, **kwargs) -> MemoryCore:
    """Build the core ``name`` for inputs of size ``input_dim``.

    :param name: a registered name (:func:`core_names`), ``"module:name"``, or a
        :class:`MemoryCore` subclass (built as ``name(input_dim, **kwargs)``).
    :param input_dim: size of the features the core reads at every step.
    :param kwargs: the core's own parameters (e.g. ``hidden_size`` or ``capacity``).
    :raises ValueError: unknown core, ``input_dim < 1``, a key the core does not take (the
        message lists those it does take), or arguments the core rejects.
    """
    if isinstance(name, type) and issubclass(name, MemoryCore):
        cls, label = name, name.__name__
    else:
        cls, label = get_core(name).cls, repr(name)
    if int(input_dim) < 1:
        raise ValueError(f"input_dim must be >= 1, got {input_dim}")
    _check_kwargs(label, cls, kwargs)
    try:
        return cls(int(input_dim), **kwargs)
    except TypeError as err:
        raise ValueError(f"bad memory_kwargs for the {label} core: {err}") from err


def _param_docs(doc: str) -> dict[str, str]:
    """``{name: text}`` of the reST ``:param name: text`` fields of a docstring."""
    out: dict[str, str] = {}
    for m in re.finditer(r":param (\w+):(.*?)(?=\n\s*:|\Z)", doc, flags=re.S):
        out[m.group(1)] = " ".join(m.group(2).split())
    return out
