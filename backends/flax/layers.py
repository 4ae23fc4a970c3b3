"""The small Flax NNX modules and functions that archlang's ops need and ``flax.nnx`` lacks.

Images are NHWC here: the model converts its NCHW inputs once, at its boundary, so every
helper reads channels from the last axis.

The emitter pastes ``inspect.getsource`` of the helpers a model uses into a standalone file, so
each one is self-contained: it refers only to ``jax``, ``jnp``, ``nnx`` and ``math`` and to no
other helper of this module. Functions take their tensor operands first and their static
options after them, so that a generated forward reads ``x = concat(x3, x7, axis=3)``.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx


class BatchNorm(nnx.Module):
    """Batch norm over the last axis with PyTorch's semantics, so that weights, running
    statistics and their updates carry over between the backends unchanged.

    Unlike ``nnx.BatchNorm``: ``momentum`` is torch's (running = (1 - m) * running + m * batch),
    the running variance takes the unbiased batch variance, and ``num_batches_tracked`` counts
    training steps as torch's buffer does. ``model.train()`` / ``model.eval()`` switch
    ``use_running_average``.
    """

    def __init__(self, features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 use_running_average: bool = False, rngs: nnx.Rngs | None = None) -> None:
        self.scale = nnx.Param(jnp.ones((features,)))
        self.bias = nnx.Param(jnp.zeros((features,)))
        self.mean = nnx.BatchStat(jnp.zeros((features,)))
        self.var = nnx.BatchStat(jnp.ones((features,)))
        self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), jnp.int32))
        self.eps = eps
        self.momentum = momentum
        self.use_running_average = use_running_average

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axes)
            # E[x^2] - E[x]^2 in one pass over x, as nnx.BatchNorm computes it
            var = jnp.maximum(jnp.mean(jnp.square(x), axes) - jnp.square(mean), 0.0)
            n = x.size // x.shape[-1]
            m = self.momentum
            unbiased = jax.lax.stop_gradient(var) * (n / max(n - 1, 1))
            self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
            self.var[...] = (1 - m) * self.var[...] + m * unbiased
            self.num_batches_tracked[...] += 1
        mul = jax.lax.rsqrt(var + self.eps) * self.scale[...]
        return (x - mean) * mul + self.bias[...]


class SelfAttention(nnx.Module):
    """Multi-head self-attention over tokens (B, N, D), laid out like timm's Attention (one
    qkv projection, then an output projection), with the scores as explicit matmuls."""

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = True, proj_bias: bool = True,
                 causal: bool = False, rngs: nnx.Rngs) -> None:
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.causal = causal
        self.qkv = nnx.Linear(dim, 3 * dim, use_bias=qkv_bias, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, use_bias=proj_bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each (B, N, heads, head_dim)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q * self.scale, k)
        if self.causal:
            # token i may attend to tokens 0..i only
            past = jnp.tril(jnp.ones((n, n), dtype=bool))
            scores = jnp.where(past, scores, -jnp.inf)
        out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        return self.proj(out.reshape(b, n, d))


class SqueezeExcite(nnx.Module):
    """Squeeze-and-excitation on an NHWC image; fc1/fc2 are the 1x1 convs of torchvision's
    SqueezeExcitation, written as linear maps of the pooled channels."""

    def __init__(self, channels: int, reduced: int, *, act: str = "relu",
                 gate: str = "sigmoid", rngs: nnx.Rngs) -> None:
        self.fc1 = nnx.Linear(channels, reduced, rngs=rngs)
        self.fc2 = nnx.Linear(reduced, channels, rngs=rngs)
        self.act = act
        self.gate = gate

    def __call__(self, x: jax.Array) -> jax.Array:
        s = self.fc1(jnp.mean(x, axis=(1, 2), keepdims=True))
        s = jax.nn.relu(s) if self.act == "relu" else jax.nn.silu(s)
        s = self.fc2(s)
        return x * (jax.nn.sigmoid(s) if self.gate == "sigmoid" else jax.nn.hard_sigmoid(s))


class PatchEmbed(nnx.Module):
    """Non-overlapping patches to tokens: (B, H, W, C) -> (B, HW / patch^2, dim), row-major
    over the patch grid as timm's PatchEmbed orders them."""

    def __init__(self, in_channels: int, dim: int, patch: int, *, bias: bool = True,
                 rngs: nnx.Rngs) -> None:
        self.proj = nnx.Conv(in_channels, dim, (patch, patch), strides=(patch, patch),
                             padding="VALID", use_bias=bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.proj(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


class ClassToken(nnx.Module):
    """Prepend a learned token: (B, N, D) -> (B, N + 1, D)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs) -> None:
        init = jax.nn.initializers.truncated_normal(0.02)
        self.token = nnx.Param(init(rngs.params(), (1, 1, dim)))

    def __call__(self, x: jax.Array) -> jax.Array:
        token = jnp.broadcast_to(self.token[...], (x.shape[0], 1, x.shape[-1]))
        return jnp.concatenate([token, x], axis=1)


class PosEmbed(nnx.Module):
    """Add a learned embedding per position: (B, N, D) -> (B, N, D)."""

    def __init__(self, tokens: int, dim: int, *, rngs: nnx.Rngs) -> None:
        init = jax.nn.initializers.truncated_normal(0.02)
        self.weight = nnx.Param(init(rngs.params(), (1, tokens, dim)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x + self.weight[...]


class LayerScale(nnx.Module):
    """A learned scale per channel: the last axis of tokens, vectors and NHWC images alike."""

    def __init__(self, dim: int, *, init: float = 1e-5, rngs: nnx.Rngs | None = None) -> None:
        self.gamma = nnx.Param(jnp.full((dim,), init, dtype=jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.gamma[...]


def identity(x: jax.Array) -> jax.Array:
    return x


def global_avg_pool(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C)."""
    return jnp.mean(x, axis=(1, 2))


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
    """Average over a size x size grid of bins, PyTorch's AdaptiveAvgPool2d: bin i of an axis of
    length n covers [floor(i n / size), ceil((i + 1) n / size))."""

    def bins(n: int) -> jax.Array:
        rows = []
        for i in range(size):
            lo, hi = (i * n) // size, math.ceil((i + 1) * n / size)
            rows.append([1.0 / (hi - lo) if lo <= j < hi else 0.0 for j in range(n)])
        return jnp.asarray(rows, dtype=x.dtype)

    _, h, w, _ = x.shape
    if h % size == 0 and w % size == 0:  # equal bins: a reshape and a mean
        return jnp.mean(x.reshape(x.shape[0], size, h // size, size, w // size, x.shape[-1]),
                        axis=(2, 4))
    return jnp.einsum("bhwc,ih,jw->bijc", x, bins(h), bins(w))


def flatten(x: jax.Array) -> jax.Array:
    """(B, ...) -> (B, prod(...)), in the order the tensor has in memory."""
    return x.reshape(x.shape[0], -1)


def flatten_channels_first(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, C * H * W) in PyTorch's NCHW order, for readers that need it."""
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)


def add(*xs: jax.Array) -> jax.Array:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def multiply(*xs: jax.Array) -> jax.Array:
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


def concat(*xs: jax.Array, axis: int) -> jax.Array:
    return jnp.concatenate(xs, axis=axis)


def tied_unembed(x: jax.Array, embedding: nnx.Embed) -> jax.Array:
    """Logits from the token embedding's own table: x @ E^T (an output head tied to it)."""
    return x @ embedding.embedding[...].T


def to_tokens(x: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, HW, C): free in NHWC."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def to_image(x: jax.Array, height: int, width: int) -> jax.Array:
    """(B, HW, C) -> (B, H, W, C); the inverse of to_tokens."""
    return x.reshape(x.shape[0], height, width, x.shape[-1])


def select_token(x: jax.Array, index: int) -> jax.Array:
    """(B, N, D) -> (B, D)."""
    return x[:, index]


def token_mean(x: jax.Array) -> jax.Array:
    """(B, N, D) -> (B, D)."""
    return jnp.mean(x, axis=1)


# The order in which an emitted file defines the helpers it uses.
HELPERS = (
    BatchNorm,
    SelfAttention,
    SqueezeExcite,
    PatchEmbed,
    ClassToken,
    PosEmbed,
    LayerScale,
    identity,
    global_avg_pool,
    adaptive_avg_pool,
    flatten,
    flatten_channels_first,
    add,
    multiply,
    concat,
    tied_unembed,
    to_tokens,
    to_image,
    select_token,
    token_mean,
)
