"""A structural model fingerprint: same architecture => same fingerprint, whatever the weights.

Policies are tied to an architecture, not to one set of weights, so a policy found on one training
run can be re-applied to the same network trained elsewhere.
"""

from __future__ import annotations

import hashlib

from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """``sha256:<16 hex>`` over parameter/buffer names and shapes, in definition order."""
    h = hashlib.sha256()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}:{tuple(t.shape)};".encode())
    return "sha256:" + h.hexdigest()[:16]
