"""The small torch modules that archlang's ops need and ``torch.nn`` lacks.

The emitter pastes ``inspect.getsource(cls)`` of the classes a model uses into a standalone
file, so every class here is self-contained: it refers only to the names imported below
(``torch``, ``nn``, ``F``) and to no other class of this module.

Merges (``Add``, ``Multiply``, ``Concat``) take their operands as separate positional arguments,
so that a generated forward reads ``x9 = self.block.add(x8, x2)``.
"""

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of an NCHW image, with nn.LayerNorm(C)'s parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # normalise channels-last, then restore NCHW (timm's LayerNorm2d)
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GlobalAvgPool(nn.Module):
    """Average over all positions of an image: (B, C, H, W) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation, laid out like torchvision's SqueezeExcitation (same weight names)."""

    def __init__(
        self,
        channels: int,
        reduced: int,
        act: type[nn.Module] = nn.ReLU,
        gate: type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)
        self.activation = act()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, D), with timm's Attention layout.

    The scores are explicit matmuls rather than F.scaled_dot_product_attention so that
    torch.utils.flop_counter counts them on every device (it reports 0 for SDPA on CPU).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.causal = causal
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        if self.causal:
            # token i may attend to tokens 0..i only
            future = torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: (B, C, H, W) -> (B, HW / patch^2, dim), like timm's."""

    def __init__(self, in_channels: int, dim: int, patch: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ClassToken(nn.Module):
    """Prepend a learned token: (B, N, D) -> (B, N + 1, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.token.expand(x.shape[0], -1, -1), x), dim=1)


class PosEmbed(nn.Module):
    """Add a learned embedding per position: (B, N, D) -> (B, N, D)."""

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


class LayerScale(nn.Module):
    """A learned scale per channel: the last dim of tokens/vectors, or dim 1 of NCHW images."""

    def __init__(self, dim: int, init: float = 1e-5, channels_first: bool = False) -> None:
        super().__init__()
        shape = (dim, 1, 1) if channels_first else (dim,)
        self.gamma = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class TiedLinear(nn.Module):
    """A bias-free linear map that borrows the weight of another module (an output head tied
    to the token embedding).

    The owner is held in a tuple, which nn.Module does not register, so the shared weight is
    counted, saved and moved once, under the owner's name; `.to()` still reaches it there.
    """

    def __init__(self, owner: nn.Module) -> None:
        super().__init__()
        self.owner = (owner,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.owner[0].weight)


class ToTokens(nn.Module):
    """(B, C, H, W) -> (B, HW, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class ToImage(nn.Module):
    """(B, HW, C) -> (B, C, H, W); the inverse of ToTokens."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height = height
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).unflatten(2, (self.height, self.width))


class SelectToken(nn.Module):
    """Take one token: (B, N, D) -> (B, D)."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index]


class TokenMean(nn.Module):
    """Average over tokens: (B, N, D) -> (B, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class Add(nn.Module):
    """Sum of two or more tensors of one shape.

    `into` names an operand that nothing else reads; the sum then accumulates into it in place,
    like a hand-written residual's `out += identity`, which saves one tensor per block.
    """

    def __init__(self, into: int | None = None) -> None:
        super().__init__()
        self.into = into

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.into is None:
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out
        out = xs[self.into]
        for i, x in enumerate(xs):
            if i != self.into:
                out = out.add_(x)
        return out

    def extra_repr(self) -> str:
        return "" if self.into is None else f"into={self.into}"


class Multiply(nn.Module):
    """Product of two or more tensors, broadcasting size-1 dimensions."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(nn.Module):
    """Concatenation of two or more tensors along one dimension (batch is dim 0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


# The order in which an emitted file defines the classes it uses.
HELPERS: tuple[type[nn.Module], ...] = (
    LayerNorm2d,
    GlobalAvgPool,
    SqueezeExcite,
    SelfAttention,
    PatchEmbed,
    ClassToken,
    PosEmbed,
    LayerScale,
    TiedLinear,
    ToTokens,
    ToImage,
    SelectToken,
    TokenMean,
    Add,
    Multiply,
    Concat,
)
