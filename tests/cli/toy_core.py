"""A memory core outside the package (imported by name: ``--memory toy_core:toy``)."""

import torch
from torch import nn

from memagent.memory.core import MemoryCore, register_core


@register_core("toy", width="hidden_size")
class ToyCore(MemoryCore):
    """The running mean of the inputs since the episode began, through a linear layer.

    :param input_dim: size of the input features.
    :param hidden_size: size of the output.
    """

    state_batch_dim = 0

    def __init__(self, input_dim: int, hidden_size: int = 8):
        super().__init__()
        self.input_dim, self.output_dim = input_dim, hidden_size
        self.out = nn.Linear(input_dim, hidden_size)

    def initial_state(self, batch_size: int, device=None):
        return (torch.zeros(batch_size, self.input_dim, device=device), torch.zeros(batch_size, 1, device=device))

    def forward(self, x, state, episode_starts):
        self._check_input(x, episode_starts)
        total, count = state
        ys = []
        for t in range(x.shape[0]):  # a toy: a loop over time is fine here
            keep = (1 - episode_starts[t]).unsqueeze(-1)  # (B, 1)
            total, count = total * keep + x[t], count * keep + 1
            ys.append(torch.tanh(self.out(total / count)))
        return torch.stack(ys), (total, count)
