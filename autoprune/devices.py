"""Where torch runs (``--torch-device``), which ONNX Runtime execution provider times (``--provider``),
and what machine this is (recorded with every table and result)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch

from autoprune.errors import ConfigError

DEFAULT_PROVIDER = "CPUExecutionProvider"
_SHORT = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
          "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider",
          "dml": "DmlExecutionProvider", "rocm": "ROCMExecutionProvider", "qnn": "QNNExecutionProvider"}


def default_torch_device() -> str:
    """cuda when available, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_torch_device(name: str | None) -> str:
    """``name`` (or the default) if torch can use it here; one line naming what is available otherwise."""
    if not name:
        return default_torch_device()
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--torch-device {name!r} is not a torch device; use cpu, cuda, cuda:1 or mps") from None
    available = (device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available()
                                          and (device.index or 0) < torch.cuda.device_count())
                 or (device.type == "mps" and torch.backends.mps.is_available()))
    if not available:
        raise ConfigError(f"--torch-device {name}: not available on this machine (this torch sees "
                          f"{torch.cuda.device_count()} CUDA devices); use --torch-device cpu")
    return name


def check_provider(name: str | None) -> str:
    """The ONNX Runtime execution provider ``name`` (short names: cpu, cuda, tensorrt, openvino,
    coreml, ...) if the installed onnxruntime offers it; one line listing those it offers otherwise."""
    if not name:
        return DEFAULT_PROVIDER
    full = _SHORT.get(name.lower(), name)
    offered = ort.get_available_providers()
    if full not in offered:
        raise ConfigError(f"--provider {name}: this onnxruntime offers {', '.join(offered)}; install the "
                          f"onnxruntime build for your hardware (onnxruntime-gpu, onnxruntime-openvino, ...)")
    return full


def device_info() -> dict[str, Any]:
    """Where a table was profiled (it only predicts well on a similar machine)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "onnxruntime": ort.__version__, "python": platform.python_version()}
