"""Weight norm folded into plain weights before an ONNX export (shared by both exporters)."""

from __future__ import annotations

import torch
from torch import nn


def fold_weight_norm(module: nn.Module) -> None:
    """Replace weight-norm parametrisations (old hooks and new parametrize) by plain weights."""
    from torch.nn.utils import parametrize

    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
            continue
        for hook in list(sub._forward_pre_hooks.values()):
            if type(hook).__name__ == "WeightNorm":
                torch.nn.utils.remove_weight_norm(sub)
                break
