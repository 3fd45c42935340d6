"""Memories, one file per kind: replay, generative, nmn, hopfield, continual, recurrent."""
