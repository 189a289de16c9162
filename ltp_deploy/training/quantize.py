"""Quantization-aware training of the hard stage (``train --qat``): the INT8 scheme the export applies, simulated.

The export quantizes every projection of the encoder with NNCF's static scheme (``exporters.int8``): int8 weights,
symmetric per output channel, and uint8 activations with one static scale per projection input (the QKV GEMM
shares its input's). Under ``--qat`` stage 2 trains through the same rounding, made by torch.ao's maintained fake
quantization: each projection's weight is re-parametrised as ``FakeQuantize(per-channel symmetric int8)(W)`` and
each projection input passes a ``FakeQuantize(per-tensor affine uint8)`` whose moving-average min/max observer
sets the static scale. The attention core (QK^T, softmax, PV) and the scorer stay fp32, as in the export.

The observers freeze after stage 2, the budget search and the metric hold then run under the same quantization
(decisions are measured as the INT8 graph will make them), and ``remove`` restores plain fp32 modules holding the
trained weights: the checkpoint stays an fp32 checkpoint, and the export quantizes it with its own calibration.

Example::

    qat = FakeQuantized(model)          # before fit_hard
    ...                                  # stage 2, budget, hold
    qat.remove()                         # before saving
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver, MovingAveragePerChannelMinMaxObserver,
                                   disable_observer)
from torch.nn.utils import parametrize

from ltp_deploy.model import PrunedClassifier


class _WeightQuant(nn.Module):
    """The parametrisation ``W -> fake_quant(W)``: int8, symmetric, one scale per output channel."""

    def __init__(self):
        super().__init__()
        self.fake = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
                                 dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.fake(weight)


def _activation_quant() -> FakeQuantize:
    return FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
                        qscheme=torch.per_tensor_affine)


class FakeQuantized:
    """Fake quantization attached to ``model``'s encoder projections until ``remove()``."""

    def __init__(self, model: PrunedClassifier):
        self.model, self.hooks, self.linears = model, [], []
        self.inputs = nn.ModuleList()
        for layer in model.backbone.encoder.layer:
            attn = layer.attention
            for module, linears in ((attn.self, (attn.self.query, attn.self.key, attn.self.value)),
                                    (attn.output, (attn.output.dense,)), (layer.intermediate, (layer.intermediate.dense,)),
                                    (layer.output, (layer.output.dense,))):
                fake = _activation_quant()
                self.inputs.append(fake)
                self.hooks.append(module.register_forward_pre_hook(_quantize_first(fake)))
                for linear in linears:
                    parametrize.register_parametrization(linear, "weight", _WeightQuant())
                    self.linears.append(linear)

    def freeze(self) -> None:
        """Stop the observers: the scales stay those learned in training (the export calibrates its own)."""
        self.inputs.apply(disable_observer)
        for linear in self.linears:
            linear.parametrizations.weight.apply(disable_observer)

    def remove(self) -> None:
        """Plain fp32 modules again, holding the trained (unrounded) weights."""
        for hook in self.hooks:
            hook.remove()
        for linear in self.linears:
            parametrize.remove_parametrizations(linear, "weight", leave_parametrized=False)
        self.hooks, self.linears = [], []


def _quantize_first(fake: FakeQuantize):
    def hook(module, args):
        return (fake(args[0]), *args[1:])
    return hook
