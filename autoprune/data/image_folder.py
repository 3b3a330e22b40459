"""An image-folder data set decoded with Pillow: ``DIR/train/<class>/*.png`` and ``DIR/val/<class>/...``
(optionally ``DIR/test/...``), the layout torchvision's ``ImageFolder`` reads, without torchvision.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from autoprune.data.streams import StreamSplits
from autoprune.errors import ConfigError, DataError
from autoprune.limits import MAX_INPUT_ELEMENTS

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageFolder(Dataset):
    """``(image, class index)`` pairs; images as float tensors in [0, 1], C x H x W.

    Grey-scale trees give one channel, anything else three. Every image must have one size, or
    ``size`` (H, W) resizes them all. Only regular files are read, and an image's size is checked
    from its header before it is decoded.
    """

    def __init__(self, root: str | Path, classes: list[str] | None = None, channels: int | None = None,
                 size: tuple[int, int] | None = None) -> None:
        root = Path(root)
        found = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
        if not found:
            raise ConfigError(f"image folder {root} has no class sub-folders; lay it out as {root}/<class>/image.png")
        self.classes = classes or found
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise ConfigError(f"image folder {root} has class {unknown[0]!r} that the train split does not have")
        if classes is None and len(found) < 2:
            raise ConfigError(f"image folder {root} has one class ({found[0]}); a classifier needs at least two "
                              f"class sub-folders")
        self.samples = [(p, i) for i, c in enumerate(self.classes) if (root / c).is_dir()
                        for p in sorted((root / c).iterdir()) if p.suffix.lower() in EXTENSIONS]
        for path, _ in self.samples:
            if not path.is_file() or path.is_symlink():
                raise ConfigError(f"{path} is not a regular file; an image folder holds image files only: remove it")
        if not self.samples:
            raise ConfigError(f"image folder {root} holds no images ({', '.join(EXTENSIONS[:3])}, ...)")
        self.root, self.size, self.resize = root, size, size is not None
        self.mode = ("L" if self._open(self.samples[0][0]).mode in ("L", "1", "I;16", "I") else "RGB") \
            if channels is None else {1: "L", 3: "RGB"}[channels]
        if size is None:
            self.size = self._open(self.samples[0][0]).size[::-1]

    def _open(self, path: Path, decode=None) -> Image.Image:
        """The image at ``path`` (decoded by ``decode`` when given); one line naming the file when it
        cannot be read (not an image, truncated, or larger than Pillow's decompression-bomb limit)."""
        try:
            image = Image.open(path)  # reads the header only
            width, height = image.size
            if width * height * len(image.getbands()) > MAX_INPUT_ELEMENTS:
                raise DataError(f"image {path} is {width}x{height}, over the {MAX_INPUT_ELEMENTS:,} values per input "
                                f"this tool handles; resize it")
            return decode(image) if decode else image
        except Image.DecompressionBombError as exc:
            raise DataError(f"image {path} is too large to decode safely ({exc}); resize it") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"cannot read image {path}: {exc}; remove or replace the file") from None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]

        def decode(image: Image.Image) -> Image.Image:
            if image.size[::-1] != tuple(self.size) and not self.resize:
                raise DataError(f"image {path} is {image.size[1]}x{image.size[0]} but the first image is "
                                f"{self.size[0]}x{self.size[1]}; make them one size or pass --input-shape C,H,W "
                                f"to resize all")
            image = image.convert(self.mode)
            return image if image.size[::-1] == tuple(self.size) else image.resize((self.size[1], self.size[0]))

        image = self._open(path, decode)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())
        return tensor, label


def image_folder_splits(root: str | Path, size: tuple[int, int] | None = None) -> StreamSplits:
    """``root/train`` and ``root/val`` (and ``root/test`` when present) as streamed splits.

    No augmentation by default: whether a flip keeps an image's label depends on the images
    (``--augment crop,flip`` turns it on).
    """
    root = Path(root)
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ConfigError(f"--data imagefolder:{root} needs {root / split}/ with one folder per class")
    train = ImageFolder(root / "train", size=size)
    channels = 1 if train.mode == "L" else 3
    val = ImageFolder(root / "val", train.classes, channels, train.size)
    test = ImageFolder(root / "test", train.classes, channels, train.size) if (root / "test").is_dir() else None
    for split in (val, test):
        if split is not None:
            split.resize = train.resize  # one size in every split unless --input-shape resizes
    return StreamSplits(train, val, test, num_classes=len(train.classes))
