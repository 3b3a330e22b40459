"""Models that take several inputs, and data factories that yield them (for tests/test_several_inputs.py)."""

import torch
from torch import nn
from torch.utils.data import Dataset


class TwoTower(nn.Module):
    """An image and a vector, passed positionally and fused."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc_v = nn.Linear(4, 32)
        self.head = nn.Linear(16 + 32, 10)

    def forward(self, image, vector):
        a = torch.relu(self.conv2(torch.relu(self.conv1(image)))).mean((2, 3))
        return self.head(torch.cat([a, torch.relu(self.fc_v(vector))], 1))


class MaskedText(nn.Module):
    """Token IDs and an attention mask, passed as keywords (as Hugging Face models take them)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)
        self.head = nn.Linear(32, 2)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids)
        h = h + self.fc2(torch.relu(self.fc1(h)))
        m = attention_mask.unsqueeze(-1).float()
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1))


def two_tower():
    torch.manual_seed(0)
    return TwoTower()


def masked_text():
    torch.manual_seed(0)
    return MaskedText()


class Pairs(Dataset):
    def __len__(self):
        return 96

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return (torch.randn(1, 12, 12, generator=g), torch.randn(4, generator=g)), i % 10


class Texts(Dataset):
    """Hugging Face's convention: one dict per sample, the target under ``labels``; masks of varying length."""

    def __len__(self):
        return 96

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        mask = (torch.arange(16) < 6 + i % 10).long()
        return {"input_ids": torch.randint(1, 100, (16,), generator=g) * mask, "attention_mask": mask, "labels": i % 2}


class Unlabelled(Texts):
    def __getitem__(self, i):
        item = super().__getitem__(i)
        item.pop("labels")
        return item


def pairs():
    return Pairs(), Pairs()


def texts():
    return Texts(), Texts(), Texts()


def unlabelled():
    return Unlabelled(), Unlabelled()


def text_example():
    return {"input_ids": torch.randint(1, 100, (1, 16)), "attention_mask": torch.ones(1, 16, dtype=torch.long)}


def broken_example():
    raise RuntimeError("no example today")
