"""Small models of common structures, written for the structure suite (the kinds Torch-Pruning's own
tests exercise, and what users bring): each ``build()`` is seeded, takes a 1x28x28 image batch."""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


def _seeded(cls):
    def build(**_):
        torch.manual_seed(0)
        return cls().eval()
    build.__name__ = cls.__name__
    return build


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.c2, self.b2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))))
        return self.fc(x.mean((2, 3)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.a, self.b = nn.Conv2d(16, 24, 3, padding=1), nn.Conv2d(24, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = h + self.b(F.relu(self.a(h)))
        return self.fc(h.mean((2, 3)))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.l, self.r = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 16, 5, padding=2)
        self.mix = nn.Conv2d(24, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.cat([F.relu(self.l(x)), F.relu(self.r(x))], 1)
        return self.fc(F.relu(self.mix(h)).mean((2, 3)))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.expand, self.bn = nn.Conv2d(1, 32, 1), nn.BatchNorm2d(32)
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.project = nn.Conv2d(32, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu6(self.dw(F.relu6(self.bn(self.expand(x)))))
        return self.fc(self.project(h).mean((2, 3)))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.g = nn.Conv2d(16, 32, 3, padding=1, groups=4)
        self.c3 = nn.Conv2d(32, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(F.relu(self.c3(F.relu(self.g(F.relu(self.c1(x)))))).mean((2, 3)))


class Flatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 5, stride=2)
        self.fc1, self.drop, self.fc2 = nn.Linear(8 * 12 * 12, 64), nn.Dropout(0.1), nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.fc1(F.relu(self.c1(x)).flatten(1)))))


class MLPNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.n1 = nn.Linear(784, 128), nn.LayerNorm(128)
        self.fc2, self.n2 = nn.Linear(128, 64), nn.BatchNorm1d(64)
        self.out = nn.Linear(64, 10)

    def forward(self, x):
        h = F.gelu(self.n1(self.fc1(x.flatten(1))))
        return self.out(F.relu(self.n2(self.fc2(h))))


class PReLUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.act = nn.Conv2d(1, 16, 3, padding=1), nn.PReLU(16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(F.relu(self.c2(self.act(self.c1(x)))).mean((2, 3)))


class Upsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.interpolate(F.relu(self.down(x)), scale_factor=2, mode="nearest")
        return self.fc(F.relu(self.c2(h)).amax((2, 3)))


class DictOut(nn.Module):
    """Features and logits: the layer producing the features is an output layer too."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 16, 3, padding=1)
        self.feat, self.head = nn.Linear(16, 32), nn.Linear(32, 10)

    def forward(self, x):
        f = self.feat(F.relu(self.c1(x)).mean((2, 3)))
        return {"features": f, "logits": self.head(F.relu(f))}


class TupleOut(nn.Module):
    """Logits and an auxiliary feature map behind a functional op (found by the trial cut); which
    output to score is ambiguous, so a search with a built-in score is refused."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.c1(x))
        aux = torch.sigmoid(self.c2(h))
        return self.fc(aux.mean((2, 3))), aux * 2


@dataclass
class Result:
    logits: torch.Tensor
    embedding: torch.Tensor


class DataclassOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 24, 3, padding=1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        e = F.relu(self.c2(F.relu(self.c1(x)))).mean((2, 3))
        return Result(self.fc(e), e)


class Split(nn.Module):
    """One conv applied to two slices of ``torch.split``: not prunable as the graph says."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        a, b = torch.split(self.c1(x), 8, dim=1)
        return self.fc(torch.cat([self.c2(a), self.c2(b)], 1).mean((2, 3)))


class Chunk(nn.Module):
    """Half of a chunked map through a conv, concatenated with the other half: the conv prunes (its
    channels map to the right slice of the concatenation); the chunked conv keeps its group whole."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        a, b = F.relu(self.c1(x)).chunk(2, 1)
        return self.fc(torch.cat([F.relu(self.c2(a)), b], 1).mean((2, 3)))


class CatSplit(nn.Module):
    """Two convs concatenated, split by literal sizes, one slice through a conv and concatenated again:
    the literal sizes keep the first two groups whole; the third prunes."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)
        self.c = nn.Conv2d(4, 32, 3, padding=1)
        self.fc = nn.Linear(32 + 12, 10)

    def forward(self, x):
        p, q = torch.split(torch.cat([self.a(x), self.b(x)], 1), [4, 12], 1)
        return self.fc(torch.cat([F.relu(self.c(p)), q], 1).mean((2, 3)))


class Shared(nn.Module):
    """A conv called twice at the same shapes: every call is priced."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.c2(F.relu(self.c2(F.relu(self.c1(x))))))
        return self.fc(h.mean((2, 3)))


class SharedScales(nn.Module):
    """A conv applied at two resolutions: the second call, at other shapes, is named as unpriced."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.c1(x))
        fine, coarse = self.c2(h), self.c2(F.max_pool2d(h, 2))
        return self.fc(torch.cat([fine.mean((2, 3)), coarse.mean((2, 3))], 1))


class Conv1dTail(nn.Module):
    """Most of the work in a Conv1d over the flattened feature map."""

    def __init__(self):
        super().__init__()
        self.c1, self.seq = nn.Conv2d(1, 16, 3, padding=1), nn.Conv1d(16, 16, 5, padding=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.seq(F.relu(self.c1(x)).flatten(2)).mean(-1))


class Conv1dNet(nn.Module):
    """A sequence model: Conv1d layers only (the image read as 28 steps of 28 features)."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv1d(28, 32, 3, padding=1), nn.BatchNorm1d(32)
        self.c2, self.c3 = nn.Conv1d(32, 32, 5, padding=2, stride=2), nn.Conv1d(32, 16, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x.squeeze(1))))
        return self.fc(F.relu(self.c3(F.relu(self.c2(h)))).mean(-1))


class TextBag(nn.Module):
    """Token IDs in: an embedding bag and an MLP."""

    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.fc1, self.head = nn.Linear(32, 64), nn.Linear(64, 10)

    def forward(self, ids):
        return self.head(F.relu(self.fc1(self.embed(ids).mean(1))))


class TextConv(nn.Module):
    """Token IDs in: a Conv1d over the embedded sequence."""

    input_shape = (16,)

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 24)
        self.conv, self.fc = nn.Conv1d(24, 32, 3, padding=1), nn.Linear(32, 10)

    def forward(self, ids):
        return self.fc(F.relu(self.conv(self.embed(ids).transpose(1, 2))).amax(-1))


class ClassToken(nn.Module):
    """A parameter used in forward (a class token along the embedding channels): pruned with them."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Parameter(torch.randn(1, 1, 32) * 0.02)
        self.embed, self.fc1, self.fc2 = nn.Linear(28, 32), nn.Linear(32, 64), nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x.flatten(1, 2))
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        t = t + self.fc2(F.gelu(self.fc1(t)))
        return self.head(t[:, 0])


class Attention(nn.Module):
    """nn.MultiheadAttention in a residual block: its embedding is the hidden width, pruned evenly
    across its heads; its projections and matmuls priced."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(28, 32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(32, 64), nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x.flatten(1, 2))
        t = t + self.attn(t, t, t, need_weights=False)[0]
        t = t + self.fc2(F.relu(self.fc1(t)))
        return self.head(t.mean(1))


class GroupNormNet(nn.Module):
    """A GroupNorm of 4 groups: pruned in whole norm groups (blocks of 4 channels)."""

    def __init__(self):
        super().__init__()
        self.c1, self.gn = nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(F.relu(self.c2(F.relu(self.gn(self.c1(x))))).mean((2, 3)))


class GroupNormSplit(nn.Module):
    """A GroupNorm over two concatenated groups' channels, and one of a single group: both kept whole."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.c, self.ln = nn.Conv2d(16, 16, 3, padding=1), nn.GroupNorm(1, 16)
        self.d = nn.Conv2d(16, 24, 3, padding=1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        h = F.relu(self.gn(torch.cat([self.a(x), self.b(x)], 1)))
        return self.fc(F.relu(self.d(F.relu(self.ln(self.c(h))))).mean((2, 3)))


class Decoder(nn.Module):
    """Transposed convolutions (an upsampling decoder) and a Linear reshaped into a feature map."""

    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.up1, self.bn = nn.ConvTranspose2d(32, 24, 2, 2), nn.BatchNorm2d(24)
        self.up2 = nn.ConvTranspose2d(24, 16, 4, 2, 1)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        h = self.up2(F.relu(self.bn(self.up1(self.down(x)))))
        return self.head(F.relu(h)).mean((2, 3))


class Deep(nn.Module):
    """A ResNet-like stack: two stages, a strided shortcut with a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.Conv2d(32, 32, 3, padding=1)
        self.short = nn.Conv2d(16, 32, 1, stride=2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(h + self.a2(F.relu(self.a1(h))))
        h = F.relu(self.short(h) + self.b2(F.relu(self.b1(h))))
        return self.fc(h.mean((2, 3)))


# name -> (factory, None when it prunes, else a part of the one-line refusal)
STRUCTURES = {
    "plain": (_seeded(Plain), None),
    "residual": (_seeded(Residual), None),
    "concat": (_seeded(Concat), None),
    "depthwise": (_seeded(Depthwise), None),
    "grouped": (_seeded(Grouped), None),
    "flatten": (_seeded(Flatten), None),
    "mlp_norm": (_seeded(MLPNorm), None),
    "prelu": (_seeded(PReLUNet), None),
    "upsample": (_seeded(Upsample), None),
    "dict_out": (_seeded(DictOut), None),
    "tuple_out": (_seeded(TupleOut), None),
    "dataclass_out": (_seeded(DataclassOut), None),
    "class_token": (_seeded(ClassToken), None),
    "attention": (_seeded(Attention), None),
    "deep": (_seeded(Deep), None),
    "group_norm": (_seeded(GroupNormNet), None),
    "group_norm_whole": (_seeded(GroupNormSplit), None),
    "decoder": (_seeded(Decoder), None),
    "split": (_seeded(Split), "cannot be pruned reliably"),
    "shared": (_seeded(Shared), None),
    "chunk": (_seeded(Chunk), None),
    "cat_split": (_seeded(CatSplit), None),
    "shared_scales": (_seeded(SharedScales), None),
    "conv1d_tail": (_seeded(Conv1dTail), None),
    "conv1d_net": (_seeded(Conv1dNet), None),
    "text_bag": (_seeded(TextBag), None),
    "text_conv": (_seeded(TextConv), None),
}
UNPRICED = {"shared_scales": "called again at other shapes"}
"""Structures with work the traced layers do not price: named by the coverage check (the latency
tables refuse them; the FLOPs model counts that work at its dense value)."""


def build(name: str = "plain", **_) -> nn.Module:
    """``--model tests/structures.py:build --model-args '{"name": "deep"}'``: a structure by name."""
    return STRUCTURES[name][0]()


def token_data():
    """``--data tests/structures.py:token_data``: token IDs (16 per sample) with class labels."""
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    ids, labels = torch.randint(0, 100, (192, 16), generator=g), torch.arange(192) % 10
    return TensorDataset(ids[:128], labels[:128]), TensorDataset(ids[128:], labels[128:])
