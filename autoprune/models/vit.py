"""A tiny Vision Transformer for 28x28 images (patch 4: 49 tokens and a class token), in torch only.

Written the usual way (Dosovitskiy et al. 2021): a strided-conv patch embedding, a class token and
learned position embeddings, pre-norm blocks of multi-head self-attention (separate q, k, v and
output projections) and a GELU MLP, a final norm and a linear head on the class token.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from autoprune.models.registry import FMNIST_SIZE, register_model


class Attention(nn.Module):
    """Multi-head self-attention: ``num_heads`` heads of ``head_dim`` features each."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)))
        return self.proj(out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """Patch embedding, class token, position embeddings, ``depth`` blocks, norm, head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, patch: int = 4,
                 dim: int = 64, depth: int = 4, num_heads: int = 4, mlp_dim: int = 128) -> None:
        super().__init__()
        tokens = (image_size // patch) ** 2
        self.patch = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, num_heads, mlp_dim) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(t))[:, 0])


@register_model("vit_tiny", input_size=FMNIST_SIZE)
def vit_tiny(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """ViT for 28x28 images: patch 4 (49 tokens + class token), width 64, 4 blocks of 4 heads, MLP 128."""
    return ViT(in_channels, num_classes, image_size)
