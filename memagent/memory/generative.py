"""Long-term memory of Memory Association Networks (Kim et al., MAN §3.2-3.3, eq. 2-17).

The long-term memory stores the *distribution* of each class and imagines samples of it on
demand, trained from the class-balanced batches of the short-term memory
(:class:`memagent.memory.replay.ClassQueueMemory`, eq. 17).

Type A, :class:`CVAEMemory` (§3.2, eq. 2-9): a conditional VAE. The one-hot key ``y`` enters
the encoder with the "root vector" ``x`` and the decoder with ``z``::

    L = BCE(x, D(z, y)) + beta * KL(q(z | x, y) || N(0, I)) + alpha * BCE(x, D(0, y))

the last term being the paper's extra one: reproduce the root vector from the object number
alone (the decoder at the prior's mean). Imagining class ``c`` decodes ``z ~ N(0, I)`` with ``y_c``.
``root_noise > 0`` (our departure from the paper) decodes ``z0 ~ N(0, root_noise^2 I)`` in the
root term instead of ``0``: the decoder is then trained on the latents ``imagine`` draws, not only
on the encoder's posteriors, which on Screens-v0 never fill the prior (a prior sample decoded the
agent's triangle turned: 87% of imagined screens recognised at temperature 1, 100% with
``root_noise=1``; the price is variety, see docs/man.md).

Type B, :class:`LambdaHotVAEMemory` (§3.3, eq. 10-16): an unconditional VAE whose prior for
class ``c`` is ``N(lam * e_c, I)``, ``e_c`` the one-hot vector zero-padded to ``latent_dim >
n_classes`` (eq. 12). With unit deviations two class means ``lam`` apart meet at ``z = 3`` when
``lam >= 6`` (eq. 11), so the latent space *recognises* too: ``recognize(x)`` is the class whose
mean is nearest the encoder's mean. Imagining decodes ``z ~ N(lam * e_c, I)``.
Two options depart from the paper (both off by default; ``memagent imagine`` turns them on):
``alpha > 0`` adds Type A's root term to Type B, ``alpha * BCE(x, D(z0))`` with ``z0 ~ N(lam e_c,
root_noise^2 I)`` (samples of the class's own prior reconstructing a real item of the class: the
labels are the queue keys), and ``class_code=True`` lets the decoder read ``p(c | z)`` under the
mixture of class priors beside ``z``, ``softmax_c(lam * z_c)``: a per-class decoder bias that is
still a function of ``z`` alone.

Imagining a class the memory never saw in ``fit`` warns (``UnseenClassWarning``) and returns
the decoded sample of that class's prior, which carries no learnt content.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import torch.nn.functional as F
from torch import nn

from memagent.memory.vae_nets import block_mean, is_screen, make_pair
from memagent.utils import atomic_write, resolve_device


class UnseenClassWarning(UserWarning):
    """``imagine`` was asked for a class that ``fit`` never saw."""


class GenerativeMemory(nn.Module):
    """What both types share: the networks, ``fit``, ``imagine``, save/load.

    :param n_classes: number of classes C (keys ``0 .. C-1``).
    :param item_shape: shape of one item, e.g. ``(64, 64, 3)`` or ``(8, 8)``.
    :param latent_dim: size of ``z``.
    :param arch: ``"auto"`` (conv for screens, MLP otherwise), ``"mlp"`` or ``"conv"``.
    :param net_kwargs: ``hidden=(...)`` for the MLP, ``channels=(...)`` for the conv networks.
    :param beta: weight of the KL term.
    :param learning_rate: Adam's step size.
    :param pixel_max: items are divided by this to lie in [0, 1]; ``None``: 255 for uint8
        storage, else 1 (decided at the first ``fit``).
    :param pool: the networks see ``pool x pool`` block means of channels-last images,
        ``(H, W, C) -> (H/pool, W/pool, C)``, and decode logits of that size, repeated back to
        ``(H, W, C)`` in imagined and reconstructed items. The loss is the Bernoulli
        likelihood of the full-size item under the repeated logits (exactly ``pool**2`` times
        that of the block means, which is how it is computed). 1: full size.
    :param latent_prior: where ``imagine`` draws ``z``: ``"prior"`` (the paper: the class's
        prior, ``N(0, I)`` for Type A, ``N(lam e_c, I)`` for Type B) or ``"classes"`` (not in
        the paper): each class's aggregate posterior, a diagonal Gaussian moment-matched to the
        encoder's posteriors of the class's stored items at the end of every ``fit``
        (:meth:`fit_latents`); classes without items keep the prior.
    :param shift: augmentation: ``fit`` moves each training item by a random whole number
        of pixels in ``[-shift, shift]`` down and across (edge pixels repeated), a multiple
        of ``pool`` (the networks' pixels). For screens whose views shift by a few pixels
        (Screens-v0: 2), so a state with one stored screen is still learnt at every shift.
        0: the items as stored.
    :param device: ``"auto" | "cpu" | "cuda"``.
    :param seed: seeds the weights and the sampling noise.
    """

    cond: bool = True

    def __init__(self, n_classes: int, item_shape: tuple[int, ...], latent_dim: int = 16,
                 arch: str = "auto", net_kwargs: dict | None = None, beta: float = 1.0,
                 learning_rate: float = 1e-3, pixel_max: float | None = None, pool: int = 1,
                 latent_prior: str = "prior", shift: int = 0, device: str = "auto",
                 seed: int | None = None):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if latent_prior not in ("prior", "classes"):
            raise ValueError(f"latent_prior must be 'prior' or 'classes', got {latent_prior!r}")
        pool = int(pool)
        if pool < 1 or (pool > 1 and (len(item_shape) != 3 or item_shape[0] % pool
                                      or item_shape[1] % pool)):
            raise ValueError(f"pool must be >= 1 and divide the height and width of "
                             f"channels-last images (H, W, C), got pool={pool} for "
                             f"item_shape={tuple(item_shape)}; use pool=1")
        shift = int(shift)
        if shift < 0 or shift % pool or (shift and len(item_shape) != 3):
            raise ValueError(f"shift must be >= 0, a multiple of pool={pool} and used with "
                             f"channels-last images (H, W, C), got shift={shift} for "
                             f"item_shape={tuple(item_shape)}; use shift=0 or a multiple of pool")
        self.shift = shift
        self.config = {"n_classes": int(n_classes), "item_shape": tuple(int(s) for s in item_shape),
                       "latent_dim": int(latent_dim), "arch": arch, "net_kwargs": net_kwargs or {},
                       "beta": beta, "learning_rate": learning_rate, "pixel_max": pixel_max,
                       "pool": pool, "latent_prior": latent_prior, "shift": shift, "seed": seed}
        self.latent_prior = latent_prior
        self.n_classes, self.item_shape, self.pool = int(n_classes), self.config["item_shape"], pool
        net_shape = self.item_shape if pool == 1 else \
            (self.item_shape[0] // pool, self.item_shape[1] // pool, self.item_shape[2])
        self.latent_dim, self.beta, self.pixel_max = int(latent_dim), float(beta), pixel_max
        with th.random.fork_rng(devices=[]):  # weights drawn from `seed`; the global RNG untouched
            if seed is not None:
                th.manual_seed(int(seed))
            if arch == "auto":  # decided on the items, not the pooled blocks the nets see
                arch = "conv" if is_screen(self.item_shape) else "mlp"
            self.encoder, self.decoder = make_pair(arch, net_shape,
                                                   self.n_classes if self.cond else 0,
                                                   self.latent_dim, self._decoder_cond_dim(),
                                                   **(net_kwargs or {}))
        self.register_buffer("seen", th.zeros(self.n_classes, dtype=th.long))
        # each class's aggregate posterior (latent_prior="classes"): mean, std, fitted or not
        self.register_buffer("z_mean", th.zeros(self.n_classes, self.latent_dim))
        self.register_buffer("z_std", th.ones(self.n_classes, self.latent_dim))
        self.register_buffer("z_fitted", th.zeros(self.n_classes, dtype=th.bool))
        n_params = sum(p.numel() for p in self.parameters())
        self.device = resolve_device(device, n_params)
        self.to(self.device)
        # fused: one kernel for all parameters (Adam's per-tensor element-wise steps were
        # ~10% of a step on the CPU)
        self.optimizer = th.optim.Adam(self.parameters(), lr=learning_rate,
                                       fused=self.device.type in ("cpu", "cuda"))
        self.generator = th.Generator(device=self.device)  # imagination
        self.train_generator = th.Generator(device=self.device)  # training noise (seed + 1)
        if seed is not None:
            self.generator.manual_seed(int(seed))
            self.train_generator.manual_seed(int(seed) + 1)

    # -- helpers ---------------------------------------------------------------------------
    def _noise(self, like: th.Tensor) -> th.Tensor:
        """Standard normal training noise shaped like ``like``, from the memory's own generator."""
        return th.randn(like.shape, generator=self.train_generator, device=like.device, dtype=like.dtype)

    def _onehot(self, keys: th.Tensor) -> th.Tensor:
        return F.one_hot(keys, self.n_classes).float()                    # (B,) -> (B, C)

    def _keys(self, keys) -> th.Tensor:
        keys = th.as_tensor(np.asarray(keys), device=self.device).long().reshape(-1)
        if keys.numel() and (keys.min() < 0 or keys.max() >= self.n_classes):
            raise ValueError(f"keys must lie in [0, n_classes={self.n_classes}), got "
                             f"{keys[(keys < 0) | (keys >= self.n_classes)][0].item()}")
        return keys

    def _input(self, items) -> th.Tensor:
        x = th.as_tensor(items, device=self.device)
        if tuple(x.shape[1:]) != self.item_shape:
            raise ValueError(f"items must have shape (B, *item_shape={self.item_shape}), "
                             f"got {tuple(x.shape)}")
        if self.pixel_max is None:
            self.pixel_max = 255.0 if x.dtype == th.uint8 else 1.0
            self.config["pixel_max"] = self.pixel_max
        x = x.float() / self.pixel_max
        if self.pool > 1:  # (B, H, W, C) -> (B, H/p, W/p, C) block means
            x = block_mean(x, self.pool)
        return x

    def _output(self, logits: th.Tensor) -> np.ndarray:
        if self.pool > 1:  # (B, H/p, W/p, C) -> (B, H, W, C), each logit repeated p x p
            logits = logits.repeat_interleave(self.pool, 1).repeat_interleave(self.pool, 2)
        img = th.sigmoid(logits).cpu().numpy()
        if self.pixel_max == 255.0:
            return np.round(img * 255.0).astype(np.uint8)
        return (img * (self.pixel_max or 1.0)).astype(np.float32)

    def _shifted(self, x: th.Tensor) -> th.Tensor:
        """``x (B, h, w, C)`` (the networks' resolution), each item moved by its own random
        offset of up to ``shift / pool`` pixels each way, edges repeated."""
        s = self.shift // self.pool
        B, h, w, _ = x.shape
        padded = F.pad(x.permute(0, 3, 1, 2), (s, s, s, s), mode="replicate")  # (B, C, h+2s, w+2s)
        off = th.randint(0, 2 * s + 1, (2, B, 1), generator=self.train_generator,
                         device=x.device)
        rows = (off[0] + th.arange(h, device=x.device))[:, :, None]  # (B, h, 1)
        cols = (off[1] + th.arange(w, device=x.device))[:, None, :]  # (B, 1, w)
        return padded.permute(0, 2, 3, 1)[th.arange(B, device=x.device)[:, None, None], rows, cols]

    def _bce(self, logits: th.Tensor, x: th.Tensor) -> th.Tensor:
        """Bernoulli negative log-likelihood summed over an item, averaged over the batch
        (of the full-size item: ``pool**2`` times that of the block means, linear in ``x``)."""
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") * (self.pool ** 2 / len(x))

    def _sample_z(self, mean: th.Tensor, temperature: float = 1.0) -> th.Tensor:
        noise = th.randn(mean.shape, generator=self.generator, device=self.device)
        return mean + temperature * noise

    # -- what each type defines ------------------------------------------------------------
    def _decoder_cond_dim(self) -> int:
        """Size of the condition vector the decoder reads beside ``z``."""
        return self.n_classes if self.cond else 0

    def loss(self, x: th.Tensor, keys: th.Tensor) -> tuple[th.Tensor, dict[str, float]]:
        raise NotImplementedError

    def prior_mean(self, keys: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    def decode(self, z: th.Tensor, keys: th.Tensor) -> th.Tensor:
        raise NotImplementedError

    # -- the API ---------------------------------------------------------------------------
    def fit(self, memory, steps: int, batch_size: int = 64, callback=None) -> list[dict[str, float]]:
        """Train for ``steps`` Adam steps on batches ``memory.sample(batch_size)`` (a
        :class:`ClassQueueMemory`, or anything whose ``sample`` returns ``items`` and ``keys``).

        :param callback: ``callback(step, parts)`` after every step (``step`` from 1, ``parts``
            that step's loss terms); returning False stops training there.
        :return: the loss terms of every step.
        """
        if steps < 0 or batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {steps}, {batch_size}")
        self.train()
        history = []
        for step in range(1, int(steps) + 1):
            batch = memory.sample(batch_size)
            x, keys = self._input(batch.items), self._keys(batch.keys)
            if self.shift:
                x = self._shifted(x)
            self.seen += th.bincount(keys, minlength=self.n_classes)
            loss, parts = self.loss(x, keys)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            history.append(parts)
            if callback is not None and callback(step, parts) is False:
                break
        if self.latent_prior == "classes" and hasattr(memory, "items_of"):
            self.fit_latents(memory)
        return history

    @th.no_grad()
    def _posterior(self, items, keys: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        x = self._input(items)
        return self.encoder(x, self._onehot(keys)) if self.cond else self.encoder(x)

    @th.no_grad()
    def fit_latents(self, memory) -> None:
        """Each class's aggregate posterior from its items ``memory.items_of(c)``: the mean of
        the encoder's means, and per dimension the variance of the means plus the mean
        posterior variance (the moments of the mixture of the items' posteriors)."""
        self.eval()
        for c in range(self.n_classes):
            items = memory.items_of(c) if memory.counts[c] else None
            if items is None or len(items) == 0:
                continue
            keys = th.full((len(items),), c, dtype=th.long, device=self.device)
            mu, logvar = self._posterior(items, keys)                          # (n, L) each
            var = mu.var(0, unbiased=False) + logvar.exp().mean(0)
            self.z_mean[c], self.z_std[c], self.z_fitted[c] = mu.mean(0), var.sqrt(), True

    @th.no_grad()
    def imagine(self, keys, n: int = 1, temperature: float = 1.0) -> np.ndarray:
        """``n`` imagined items of each class in ``keys``: array (len(keys), n, *item_shape),
        uint8 for uint8 items (screens), else float32 in the items' range.

        ``temperature`` scales the spread of the latent around the class's prior mean: 1 samples
        the prior, 0 decodes the class's root (the same item n times), between them trades
        variety for typical items.

        A class never seen in ``fit`` warns (:class:`UnseenClassWarning`) and gives the
        decoded sample of its prior.
        """
        keys = self._keys(keys)
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        unseen = sorted({int(k) for k in keys[self.seen[keys] == 0].tolist()})
        if unseen:
            warnings.warn(f"imagining classes the memory never saw: {unseen}; these are "
                          "samples of the untrained prior, not memories", UnseenClassWarning,
                          stacklevel=3)  # past torch's no_grad wrapper, to the caller
        self.eval()
        rep = keys.repeat_interleave(n)                                      # (K*n,)
        z = self._sample_z(self.prior_mean(rep), float(temperature))        # (K*n, L)
        if self.latent_prior == "classes":  # fitted classes: their aggregate posterior
            fitted = self.z_fitted[rep][:, None]
            from_classes = self.z_mean[rep] + (z - self.prior_mean(rep)) * self.z_std[rep]
            z = th.where(fitted, from_classes, z)
        out = self._output(self.decode(z, rep))                              # (K*n, *item)
        return out.reshape(len(keys), n, *self.item_shape)

    @th.no_grad()
    def encode(self, items) -> th.Tensor:
        """Encoder means (B, latent_dim) (Type A needs the keys: see its ``encode``)."""
        self.eval()
        return self.encoder(self._input(items))[0]

    @th.no_grad()
    def reconstruct(self, items, keys) -> np.ndarray:
        """What the memory makes of real items: each decoded at its encoder's mean, ``(B,
        *item_shape)``, the dtype of :meth:`imagine`. ``keys`` (B,) are the items' classes:
        Type A's encoder and decoder read them; Type B reads the item alone (its decoder's
        class code, if any, comes from ``z``).
        """
        keys = self._keys(keys)
        x = self._input(items)
        if len(keys) != len(x):
            raise ValueError(f"reconstruct needs one key per item, got {len(keys)} keys for "
                             f"{len(x)} items")
        self.eval()
        mu = self.encoder(x, self._onehot(keys))[0] if self.cond else self.encoder(x)[0]  # (B, L)
        return self._output(self.decode(mu, keys))                          # (B, *item)

    def save(self, path: str | Path) -> Path:
        """Weights, optimiser and configuration in one file (``load`` needs nothing else)."""
        state = {"class": type(self).__name__, "config": self.config,
                 "model": self.state_dict(), "optimizer": self.optimizer.state_dict()}
        return atomic_write(path, lambda tmp: th.save(state, tmp))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> GenerativeMemory:
        state = th.load(path, map_location="cpu", weights_only=False)
        kinds = {c.__name__: c for c in (CVAEMemory, LambdaHotVAEMemory)}
        kind = kinds[state["class"]]
        if cls is not GenerativeMemory and kind is not cls:
            raise ValueError(f"{path} holds a {state['class']}, not a {cls.__name__}: "
                             f"load it with {state['class']}.load or GenerativeMemory.load")
        mem = kind(**state["config"], device=device)
        # files from before latent_prior have no class latents: they keep the prior's
        missing, unexpected = mem.load_state_dict(state["model"], strict=False)
        if unexpected or set(missing) - {"z_mean", "z_std", "z_fitted"}:
            raise ValueError(f"{path}: weights do not fit a {state['class']} of its config "
                             f"(missing {missing}, unexpected {unexpected})")
        mem.optimizer.load_state_dict(state["optimizer"])
        return mem


def _kl_normal(mu: th.Tensor, logvar: th.Tensor, mean: th.Tensor | float = 0.0) -> th.Tensor:
    """KL(N(mu, exp(logvar)) || N(mean, I)) summed over z, averaged over the batch."""
    return 0.5 * (logvar.exp() + (mu - mean) ** 2 - 1.0 - logvar).sum(1).mean()


class CVAEMemory(GenerativeMemory):
    """Type A long-term memory: a conditional VAE with the root-vector term (MAN §3.2).

    :param alpha: weight of the term reconstructing the root vector ``x`` from the class alone,
        ``BCE(x, D(z0, y))``; 0 gives a plain CVAE.
    :param root_noise: ``z0 ~ N(0, root_noise^2 I)`` in the root term; 0 (default) is the paper's
        ``z0 = 0``, 1 trains the decoder on prior samples, what ``imagine`` decodes (not in the
        paper).
    Other parameters: :class:`GenerativeMemory`.
    """

    cond = True

    def __init__(self, n_classes: int, item_shape, latent_dim: int = 16, alpha: float = 1.0,
                 root_noise: float = 0.0, **kwargs: Any):
        if not root_noise >= 0:
            raise ValueError(f"root_noise must be >= 0, got {root_noise}")
        super().__init__(n_classes, item_shape, latent_dim, **kwargs)
        self.alpha, self.root_noise = float(alpha), float(root_noise)
        self.config.update(alpha=self.alpha, root_noise=self.root_noise)

    def prior_mean(self, keys: th.Tensor) -> th.Tensor:
        return th.zeros(len(keys), self.latent_dim, device=self.device)

    def decode(self, z: th.Tensor, keys: th.Tensor) -> th.Tensor:
        return self.decoder(z, self._onehot(keys))

    def loss(self, x, keys):
        y = self._onehot(keys)                                               # (B, C)
        mu, logvar = self.encoder(x, y)                                      # (B, L) each
        z = mu + self._noise(mu) * (0.5 * logvar).exp()
        kl = _kl_normal(mu, logvar)
        if self.alpha:  # both decodes as one batch of 2B: half the per-layer overhead
            z0 = self.root_noise * self._noise(z) if self.root_noise else th.zeros_like(z)
            logits, logits0 = self.decoder(th.cat([z, z0]), th.cat([y, y])).chunk(2)
            recon, root = self._bce(logits, x), self._bce(logits0, x)
        else:
            recon = self._bce(self.decoder(z, y), x)
            root = recon * 0
        loss = recon + self.beta * kl + self.alpha * root
        return loss, {"loss": loss.item(), "recon": recon.item(), "kl": kl.item(),
                      "root": root.item()}

    @th.no_grad()
    def encode(self, items, keys) -> th.Tensor:
        """Encoder means (B, latent_dim) of items with their keys."""
        self.eval()
        return self.encoder(self._input(items), self._onehot(self._keys(keys)))[0]


class LambdaHotVAEMemory(GenerativeMemory):
    """Type B long-term memory: a VAE with one prior ``N(lam * e_c, I)`` per class (MAN §3.3).

    :param lam: the lambda of the lambda-hot class means; >= 6 so that neighbouring classes'
        distributions meet beyond z = 3 (eq. 11).
    :param latent_dim: size of ``z``; must exceed ``n_classes`` (the lambda-hot vector is
        zero-padded, eq. 12). Default ``n_classes + 16``.
    :param alpha: weight of a root term ``BCE(x, D(z0))``, ``z0 ~ N(lam e_c, root_noise^2 I)``
        for an item ``x`` of class ``c``; 0 (default) is the paper's loss.
    :param root_noise: spread of ``z0`` around the class mean (1: samples of the class's prior).
    :param class_code: the decoder reads ``p(c | z) = softmax_c(lam * z_c)`` beside ``z`` (not in
        the paper; default off).
    Other parameters: :class:`GenerativeMemory`.
    """

    cond = False

    def __init__(self, n_classes: int, item_shape, latent_dim: int | None = None,
                 lam: float = 6.0, alpha: float = 0.0, root_noise: float = 1.0,
                 class_code: bool = False, **kwargs: Any):
        if lam < 6:
            raise ValueError(f"lam must be >= 6 so that class distributions meet beyond "
                             f"z = 3 (MAN eq. 11), got {lam}")
        if not (alpha >= 0 and root_noise >= 0):
            raise ValueError(f"alpha and root_noise must be >= 0, got {alpha}, {root_noise}")
        latent_dim = n_classes + 16 if latent_dim is None else latent_dim
        if latent_dim <= n_classes:
            raise ValueError(f"latent_dim must be > n_classes={n_classes} (the lambda-hot "
                             f"vector is zero-padded), got {latent_dim}")
        self.class_code = bool(class_code)  # read by _decoder_cond_dim in super().__init__
        super().__init__(n_classes, item_shape, latent_dim, **kwargs)
        self.lam = float(lam)
        self.alpha, self.root_noise = float(alpha), float(root_noise)
        self.config.update(lam=self.lam, alpha=self.alpha, root_noise=self.root_noise,
                           class_code=self.class_code)

    @property
    def class_means(self) -> th.Tensor:
        """(C, latent_dim): ``lam * e_c`` zero-padded."""
        return self.lam * th.eye(self.n_classes, self.latent_dim, device=self.device)

    def prior_mean(self, keys: th.Tensor) -> th.Tensor:
        return self.class_means[keys]                                        # (B, L)

    def _decoder_cond_dim(self) -> int:
        return self.n_classes if self.class_code else 0

    def class_posterior(self, z: th.Tensor) -> th.Tensor:
        """(B, C): p(c | z) under the equal mixture of the class priors ``N(lam e_c, I)``,
        ``softmax_c(-|z - lam e_c|^2 / 2) = softmax_c(lam * z_c)``."""
        return th.softmax(self.lam * z[:, :self.n_classes], dim=1)

    def _decode(self, z: th.Tensor) -> th.Tensor:
        # the code's gradient is stopped: the encoder learns from the reconstruction through z
        # and the KL only (held-out recognize on Screens-v0: 70.1% with the stop, 58.2% without)
        code = self.class_posterior(z.detach()) if self.class_code else None
        return self.decoder(z, code)

    def decode(self, z: th.Tensor, keys: th.Tensor) -> th.Tensor:
        return self._decode(z)

    def loss(self, x, keys):
        mu, logvar = self.encoder(x)                                         # (B, L) each
        z = mu + self._noise(mu) * (0.5 * logvar).exp()
        kl = _kl_normal(mu, logvar, self.prior_mean(keys))
        if self.alpha:  # both decodes as one batch of 2B: half the per-layer overhead
            z0 = self.prior_mean(keys) + self.root_noise * self._noise(mu)  # ~ N(lam e_c, I)
            logits, logits0 = self._decode(th.cat([z, z0])).chunk(2)
            recon, root = self._bce(logits, x), self._bce(logits0, x)
        else:
            recon = self._bce(self._decode(z), x)
        loss = recon + self.beta * kl
        parts = {"recon": recon.item(), "kl": kl.item()}
        if self.alpha:
            loss = loss + self.alpha * root
            parts["root"] = root.item()
        return loss, {"loss": loss.item(), **parts}

    @th.no_grad()
    def recognize(self, items) -> np.ndarray:
        """The class of each item: the lambda-hot mean nearest its encoding, (B,) int64."""
        mu = self.encode(items)                                              # (B, L)
        return th.cdist(mu, self.class_means).argmin(1).cpu().numpy()


MEMORY_TYPES = {"typeA": CVAEMemory, "typeB": LambdaHotVAEMemory}


def make_memory(kind: str, n_classes: int, item_shape, **kwargs: Any) -> GenerativeMemory:
    """``"typeA"`` (:class:`CVAEMemory`) or ``"typeB"`` (:class:`LambdaHotVAEMemory`)."""
    if kind not in MEMORY_TYPES:
        raise ValueError(f"memory must be one of {sorted(MEMORY_TYPES)}, got {kind!r}")
    return MEMORY_TYPES[kind](n_classes, item_shape, **kwargs)
