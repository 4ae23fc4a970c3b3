"""ResNet-18 and ViT-Tiny/16 written by hand in Flax NNX, the way one would without archlang:
NHWC, nnx.Conv / nnx.BatchNorm / nnx.LayerNorm / nnx.Linear, explicit attention.

They take NCHW inputs (and transpose once), like archlang's flax build, and their state paths
match the build's (``layer2.0.downsample.0.kernel``, ``blocks.3.attn.qkv.kernel``), so
bench/flax_speed.py can give both the same weights and check that they compute the same thing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _conv(cin: int, cout: int, k: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
    p = (k - 1) // 2
    return nnx.Conv(cin, cout, (k, k), strides=(stride, stride), padding=((p, p), (p, p)),
                    use_bias=False, rngs=rngs)


def _bn(c: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, rngs=rngs)


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs) -> None:
        self.conv1 = _conv(cin, cout, 3, stride, rngs)
        self.bn1 = _bn(cout, rngs)
        self.conv2 = _conv(cout, cout, 3, 1, rngs)
        self.bn2 = _bn(cout, rngs)
        self.downsample = (nnx.List([_conv(cin, cout, 1, stride, rngs), _bn(cout, rngs)])
                           if stride != 1 or cin != cout else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        out = jax.nn.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample[1](self.downsample[0](x))
        return jax.nn.relu(out + identity)


class ResNet18(nnx.Module):
    def __init__(self, classes: int = 1000, *, rngs: nnx.Rngs) -> None:
        self.conv1 = _conv(3, 64, 7, 2, rngs)
        self.bn1 = _bn(64, rngs)
        cin = 64
        for i, (c, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            setattr(self, f"layer{i}", nnx.List([BasicBlock(cin, c, s, rngs),
                                                 BasicBlock(c, c, 1, rngs)]))
            cin = c
        self.fc = nnx.Linear(512, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.transpose(x, (0, 2, 3, 1))  # NCHW -> NHWC
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return self.fc(jnp.mean(x, axis=(1, 2)))


class Attention(nnx.Module):
    def __init__(self, dim: int, heads: int, rngs: nnx.Rngs) -> None:
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        q, k, v = jnp.split(self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q * (d // self.heads) ** -0.5, k)
        out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        return self.proj(out.reshape(b, n, d))


class Mlp(nnx.Module):
    def __init__(self, dim: int, hidden: int, rngs: nnx.Rngs) -> None:
        self.fc1 = nnx.Linear(dim, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


class Block(nnx.Module):
    def __init__(self, dim: int, heads: int, rngs: nnx.Rngs) -> None:
        self.norm1 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.attn = Attention(dim, heads, rngs)
        self.norm2 = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.mlp = Mlp(dim, 4 * dim, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nnx.Module):
    def __init__(self, dim: int, patch: int, rngs: nnx.Rngs) -> None:
        self.proj = nnx.Conv(3, dim, (patch, patch), strides=(patch, patch), padding="VALID",
                             rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.proj(x)
        return x.reshape(x.shape[0], -1, x.shape[-1])


class Token(nnx.Module):
    def __init__(self, shape: tuple[int, ...], name: str, rngs: nnx.Rngs) -> None:
        setattr(self, name, nnx.Param(jax.nn.initializers.truncated_normal(0.02)(
            rngs.params(), shape)))


class VitTiny(nnx.Module):
    def __init__(self, classes: int = 1000, depth: int = 12, dim: int = 192, heads: int = 3,
                 *, rngs: nnx.Rngs) -> None:
        self.patch_embed = PatchEmbed(dim, 16, rngs)
        self.cls_token = Token((1, 1, dim), "token", rngs)
        self.pos_embed = Token((1, 197, dim), "weight", rngs)
        self.blocks = nnx.List([Block(dim, heads, rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(dim, epsilon=1e-6, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.patch_embed(jnp.transpose(x, (0, 2, 3, 1)))
        cls = jnp.broadcast_to(self.cls_token.token[...], (x.shape[0], 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1) + self.pos_embed.weight[...]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])
