"""Agents that put memories to work (installed as ``memagent.agents``)."""
