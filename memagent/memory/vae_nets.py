"""Encoders and decoders of the long-term memories (MAN §3.2, §3.3).

An MLP pair for vectors and small images (8 x 8 digits, MNIST) and a convolutional pair for
screens (``(H, W, C)`` with H and W multiples of 16, e.g. 64 x 64 x 3). Both take an optional
condition vector ``c`` (the one-hot key of Type A; Type B passes none): the MLP encoder reads
it with the input, the conv encoder with the conv features, and both decoders with ``z``.
Decoders return logits; ``sigmoid(logits)`` is the image in [0, 1]. The conv pair can add a
linear path beside the convolutions (``skip=True``): pooled pixels -> (mu, logvar) in the
encoder, (z, c) -> logits in the decoder; it speeds up early learning on 64 x 64 screens.
"""

from __future__ import annotations

import math

import torch as th
from torch import nn


def _cat(x: th.Tensor, c: th.Tensor | None) -> th.Tensor:
    return x if c is None else th.cat([x, c], dim=1)


class MLPEncoder(nn.Module):
    """``(x, c) -> (mu, logvar)``; x (B, *item_shape) is flattened."""

    def __init__(self, item_shape, cond_dim: int, latent_dim: int, hidden=(256, 256)):
        super().__init__()
        layers, width = [], math.prod(item_shape) + cond_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 2 * latent_dim)

    def forward(self, x: th.Tensor, c: th.Tensor | None = None):
        h = self.body(_cat(x.flatten(1), c))          # (B, *item_shape) -> (B, D) -> (B, H)
        mu, logvar = self.head(h).chunk(2, dim=1)     # (B, 2L) -> 2 x (B, L)
        return mu, logvar


class MLPDecoder(nn.Module):
    """``(z, c) -> logits`` of shape (B, *item_shape)."""

    def __init__(self, item_shape, cond_dim: int, latent_dim: int, hidden=(256, 256)):
        super().__init__()
        self.item_shape = tuple(item_shape)
        layers, width = [], latent_dim + cond_dim
        for h in reversed(hidden):
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, math.prod(item_shape)))

    def forward(self, z: th.Tensor, c: th.Tensor | None = None) -> th.Tensor:
        return self.net(_cat(z, c)).view(-1, *self.item_shape)  # (B, D) -> (B, *item_shape)


def block_mean(x: th.Tensor, p: int) -> th.Tensor:
    """Means of ``p x p`` pixel blocks of channels-last images, (B, H, W, C) -> (B, H/p, W/p, C)
    (``avg_pool2d`` without the channels-first round trip: sums of contiguous slices)."""
    if p == 1:
        return x
    b, h, w, c = x.shape
    rows = x.reshape(b, h // p, p, w * c)                                     # (B, H/p, p, W*C)
    rows = sum(rows[:, :, i] for i in range(1, p)) + rows[:, :, 0]            # (B, H/p, W*C)
    cols = rows.view(b, h // p, w // p, p, c)
    return (sum(cols[:, :, :, i] for i in range(1, p)) + cols[:, :, :, 0]) * (1.0 / (p * p))


def _patchify(conv: nn.Conv2d, x: th.Tensor) -> th.Tensor:
    """``conv`` (kernel = stride = k, no padding) of channels-last ``x`` as one matrix product
    over k x k patches: (B, H, W, C) -> (B, Cout, H/k, W/k), what ``conv(x.permute(0, 3, 1,
    2))`` gives, without the strided convolution (the costliest layer on a CPU)."""
    k = conv.stride[0]
    b, h, w, c = x.shape
    patches = x.reshape(b, h // k, k, w // k, k, c).permute(0, 1, 3, 5, 2, 4)  # (B, h, w, C, k, k)
    out = patches.reshape(b, h // k, w // k, c * k * k) @ conv.weight.flatten(1).T + conv.bias
    return out.permute(0, 3, 1, 2)                                            # (B, Cout, h, w)


def _unpatchify(deconv: nn.ConvTranspose2d, h: th.Tensor) -> th.Tensor:
    """``deconv`` (kernel = stride = k, no padding) as one matrix product, channels-last out:
    (B, Cin, h, w) -> (B, h*k, w*k, Cout), what ``deconv(h).permute(0, 2, 3, 1)`` gives."""
    k = deconv.stride[0]
    b, cin, hh, ww = h.shape
    cout = deconv.out_channels
    out = h.permute(0, 2, 3, 1) @ deconv.weight.flatten(1)                   # (B, h, w, Cout*k*k)
    out = out.view(b, hh, ww, cout, k, k).permute(0, 1, 4, 2, 5, 3)           # (B, h, k, w, k, Cout)
    return out.reshape(b, hh * k, ww * k, cout) + deconv.bias


def _n_layers(item_shape, channels, stem: int) -> int:
    """Conv layers from ``item_shape`` down to 4 x 4: one stride-``stem`` layer, then stride 2."""
    height, width = item_shape[:2]
    n = 1 + int(math.log2(max(height // (4 * stem), 1)))
    if stem not in (2, 4) or height != width or height != 4 * stem * 2 ** (n - 1) \
            or len(channels) < n:
        raise ValueError(f"conv networks take square images of 4 * stem * 2**k pixels "
                         f"(stem 2 or 4) with len(channels) >= k + 1, got item_shape="
                         f"{tuple(item_shape)}, stem={stem}, channels={tuple(channels)}; "
                         "use arch='mlp' for other shapes")
    return n


class ConvEncoder(nn.Module):
    """Channels-last images (B, H, W, C) -> ``(mu, logvar)``: a stride-``stem`` conv (4x4
    kernel; ``stem=4`` is a cheap patchify for 64 x 64 screens), then stride-2 4x4 convs down
    to 4 x 4."""

    def __init__(self, item_shape, cond_dim: int, latent_dim: int, channels=(32, 64, 64, 64),
                 stem: int = 2, skip: bool = False):
        super().__init__()
        n = _n_layers(item_shape, channels, stem)
        # linear path from the 2x2-pooled image to (mu, logvar), beside the convs: it learns
        # where things are in a few hundred steps, the convs refine
        self.skip = nn.Sequential(nn.AvgPool2d(2), nn.Flatten(),
                                  nn.Linear(math.prod(item_shape) // 4, 2 * latent_dim)) if skip else None
        layers, ch = [], item_shape[2]
        for i, out in enumerate(channels[:n]):
            layers += [nn.Conv2d(ch, out, 4, stem if i == 0 else 2, 0 if i == 0 and stem == 4 else 1),
                       nn.ReLU()]
            ch = out
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.patch = stem == 4  # the stride-4 first conv runs as a matrix product of patches
        self.head = nn.Sequential(nn.Linear(ch * 16 + cond_dim, 256), nn.ReLU(),
                                  nn.Linear(256, 2 * latent_dim))

    def forward(self, x: th.Tensor, c: th.Tensor | None = None):
        if self.patch:                                # (B, H, W, C) -> (B, ch, H/4, W/4)
            feats = self.conv[1:](_patchify(self.conv[0], x))
        else:
            feats = self.conv(x.permute(0, 3, 1, 2))  # (B, H, W, C) -> (B, C, H, W) -> (B, ch*16)
        out = self.head(_cat(feats, c))               # (B, ch*16 [+ C]) -> (B, 2L)
        if self.skip is not None:
            # (B, H, W, C) -> 2x2 block means, flattened channels first -> (B, 2L)
            out = out + self.skip[2](block_mean(x, 2).permute(0, 3, 1, 2).flatten(1))
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """``(z, c) -> logits`` (B, H, W, C): a 4 x 4 map upsampled by stride-2 transposed convs
    (the last of stride ``stem``)."""

    def __init__(self, item_shape, cond_dim: int, latent_dim: int, channels=(32, 64, 64, 64),
                 stem: int = 2, skip: bool = False):
        super().__init__()
        out_ch = item_shape[2]
        self.item_shape = tuple(item_shape)
        # linear path from (z, c) to the logits, beside the deconvs: a per-class image at once
        self.skip = nn.Linear(latent_dim + cond_dim, math.prod(item_shape)) if skip else None
        n_up = _n_layers(item_shape, channels, stem)
        chans = list(reversed(channels[:n_up]))        # e.g. [64, 64, 64, 32]
        self.start = chans[0]
        self.fc = nn.Sequential(nn.Linear(latent_dim + cond_dim, 256), nn.ReLU(),
                                nn.Linear(256, chans[0] * 16), nn.ReLU())
        layers = []
        for i, ch in enumerate(chans):
            last = i == len(chans) - 1
            out = out_ch if last else chans[i + 1]
            layers.append(nn.ConvTranspose2d(ch, out, 4, stem, 0) if last and stem == 4
                          else nn.ConvTranspose2d(ch, out, 4, 2, 1))
            if not last:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)
        self.patch = stem == 4  # the stride-4 last deconv runs as a matrix product

    def forward(self, z: th.Tensor, c: th.Tensor | None = None) -> th.Tensor:
        zc = _cat(z, c)
        h = self.fc(zc).view(-1, self.start, 4, 4)           # (B, ch*16) -> (B, ch, 4, 4)
        if self.patch:                                       # (B, ch, H/4, W/4) -> (B, H, W, C)
            out = _unpatchify(self.deconv[-1], self.deconv[:-1](h))
        else:
            out = self.deconv(h).permute(0, 2, 3, 1)         # (B, C, H, W) -> (B, H, W, C)
        if self.skip is not None:
            out = out + self.skip(zc).view(-1, *self.item_shape)  # (B, H*W*C) -> (B, H, W, C)
        return out


def is_screen(item_shape) -> bool:
    """Channels-last images of at least 16 x 16 pixels: what ``arch="auto"`` gives conv nets."""
    return len(item_shape) == 3 and item_shape[0] >= 16 and item_shape[2] <= 4


def make_pair(arch: str, item_shape, cond_dim: int, latent_dim: int,
              decoder_cond_dim: int | None = None, **kwargs):
    """``(encoder, decoder)`` for ``arch`` in ``"mlp" | "conv" | "auto"`` (conv for
    channels-last images of at least 16 x 16 pixels, else MLP). The encoder reads a condition
    of ``cond_dim``, the decoder one of ``decoder_cond_dim`` (default: ``cond_dim``)."""
    dec_cond = cond_dim if decoder_cond_dim is None else decoder_cond_dim
    if arch == "auto":
        arch = "conv" if is_screen(item_shape) else "mlp"
    if arch == "mlp":
        return MLPEncoder(item_shape, cond_dim, latent_dim, **kwargs), \
            MLPDecoder(item_shape, dec_cond, latent_dim, **kwargs)
    if arch == "conv":
        return ConvEncoder(item_shape, cond_dim, latent_dim, **kwargs), \
            ConvDecoder(item_shape, dec_cond, latent_dim, **kwargs)
    raise ValueError(f"arch must be 'auto', 'mlp' or 'conv', got {arch!r}")
