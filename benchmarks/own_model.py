"""The whole pipeline on a model and data that are not built in, driven through the CLI.

Fashion-MNIST is written out as an image-folder tree of PNGs (``train/<class>/*.png``,
``val/...``, ``test/...``; a class-balanced subset); the model is ``benchmarks/own_model/net.py:build``.
It is trained from scratch, then ``autoprune pipeline`` searches a latency budget, applies,
fine-tunes and exports it, all by reference. Every step is a CLI command, recorded in
``results/<name>/steps.txt``; finished steps are skipped when the script is run again.

Usage: python benchmarks/own_model.py [--per-class 1000] [--episodes 150] [--name own_model]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import ROOT, result_dir
from PIL import Image

from autoprune.data import find_fashion_mnist, read_idx

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def write_tree(root: Path, per_class: int, val_per_class: int) -> None:
    """PNG files of a class-balanced Fashion-MNIST subset: train and val (disjoint) from the
    training set, test from the test set."""
    if (root / "done").is_file():
        return
    files = find_fashion_mnist()
    train_x, train_y = read_idx(files["train_x"]), read_idx(files["train_y"])
    test_x, test_y = read_idx(files["test_x"]), read_idx(files["test_y"])
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        train_order = rng.permutation(np.flatnonzero(train_y == k))
        test_order = rng.permutation(np.flatnonzero(test_y == k))
        for split, images, chosen in (("train", train_x, train_order[:per_class]),
                                      ("val", train_x, train_order[per_class:per_class + val_per_class]),
                                      ("test", test_x, test_order[:val_per_class])):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in chosen:
                Image.fromarray(images[i]).save(folder / f"{i}.png")
    (root / "done").write_text("ok")


def step(log: Path, marker: Path, args: list[str]) -> None:
    """Run one autoprune command unless ``marker`` exists; append it to the log."""
    line = "autoprune " + " ".join(shlex.quote(a) for a in args)
    if marker.exists():
        print(f"done already: {line}")
        return
    print(line, flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autoprune.cli.main", *args], check=True, cwd=ROOT)
    with log.open("a") as f:
        f.write(f"{line}\n    # {time.perf_counter() - start:.0f} s\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=1000, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=200)
    parser.add_argument("--train-epochs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=150)
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    parser.add_argument("--budget", default="50%")
    parser.add_argument("--images", default="runs/fmnist_png", help="where the PNG tree is written")
    parser.add_argument("--name", default="own_model")
    args = parser.parse_args()
    out = result_dir(args.name)
    images = ROOT / args.images
    write_tree(images, args.per_class, args.val_per_class)
    log = out / "steps.txt"
    model, data = "benchmarks/own_model/net.py:build", f"imagefolder:{args.images}"
    step(log, out / "train" / "model.pt", ["train", "--model", model, "--data", data, "--epochs",
                                           str(args.train_epochs), "--lr", "0.05", "--out", str(out / "train")])
    step(log, out / "pipeline" / "pipeline.json", [
        "pipeline", "--model", model, "--weights", str(out / "train" / "model.pt"), "--data", data,
        "--budget", args.budget, "--episodes", str(args.episodes), "--epochs", str(args.epochs), "--distill",
        "--val-size", str(10 * args.val_per_class), "--out", str(out / "pipeline")])
    summary = json.loads((out / "pipeline" / "pipeline.json").read_text())
    trained = json.loads((out / "train" / "train.json").read_text())
    print(json.dumps({"trained_test_acc": trained["test_acc"], **summary}, indent=1))


if __name__ == "__main__":
    main()
