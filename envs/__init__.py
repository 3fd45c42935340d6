"""Recall-dependent gridworlds (installed as ``memagent.envs``).

``register_envs()`` runs on ``import memagent`` and registers every id with gymnasium.
"""

from __future__ import annotations


def register_envs() -> None:
    """Register the ``memagent/...`` ids with gymnasium (idempotent)."""
