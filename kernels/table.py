"""The kernel table: every backend's ``KERNELS`` in priority order, and the choice of one per layer.

Choosing = the first entry whose scheme, device and requirements fit (``Kernel.refusal``); the eager reference is
last, so there always is one. The result is a ``Choice``: the entry itself (which then runs, with nothing
branching on the scheme again), the fallback note, and why the better entries were refused. A pure function of
``DeviceCaps``, scheme, shape and request: ``select.py`` caches it per device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import eager_backend, npu_backend, torch_backend, triton_backend
from .caps import DeviceCaps
from .kernel import Block, Kernel

GEMM_ALIGN = 16  # every fast kernel needs N and K multiples of this; other layers run eager
# priority order: a scheme's own fast paths first (NPU, torch/cuBLAS, Triton), then the weight-only fallbacks
KERNELS: tuple[Kernel, ...] = (*npu_backend.KERNELS, *torch_backend.KERNELS, *triton_backend.KERNELS,
                               *torch_backend.FALLBACK_KERNELS, *eager_backend.KERNELS)
SCHEMES = tuple(dict.fromkeys(s for kernel in KERNELS for s in kernel.schemes))
IMPLEMENTATIONS = tuple(dict.fromkeys(kernel.name for kernel in KERNELS))
# M buckets the choice is cached per: the largest ``max_m`` any kernel declares splits small from large inputs.
M_SPLIT = max((k.max_m for k in KERNELS if k.max_m is not None), default=0)
# Requests a user can make (QuantLinear.backend, node widgets): "cublas" and "torch" both mean the torch kernels.
REQUESTS = ("auto", "cublas", "torch", "triton", "eager")
REQUEST_FAMILY = {"cublas": "torch", "torch": "torch", "triton": "triton", "eager": "eager"}


@dataclass(frozen=True)
class Choice:
    """The kernel for one layer, why it is a fallback ("" when it is the scheme's fast path), and what was refused
    before it (name, reason)."""

    kernel: Kernel
    note: str = ""
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def backend(self) -> str:
        return self.kernel.name

    def run(self, x2: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
            input_scale: torch.Tensor | None, block: Block, out_dtype: torch.dtype) -> torch.Tensor:
        return self.kernel.run(x2, weight, weight_scale, bias, input_scale, block, out_dtype)


def eager_kernel(scheme: str) -> Kernel:
    return next(k for k in eager_backend.KERNELS if scheme in k.schemes)


def candidates(caps: DeviceCaps, scheme: str, n: int, k: int, block: Block, m: int = 0) -> list[Choice]:
    """Kernels that run ``scheme`` on this device for an [N, K] layer and ``m`` rows (0: small), best first;
    always ends with ``eager``."""
    out: list[Choice] = []
    refused: list[tuple[str, str]] = []
    for kernel in KERNELS:
        if scheme not in kernel.schemes or kernel.family == "eager":
            continue
        why = kernel.refusal(caps, n, k, block, m)
        if why is None:
            out.append(Choice(kernel, kernel.note, tuple(refused)))
        elif not kernel.devices or caps.device_type in kernel.devices:
            refused.append((kernel.name, why))
    note = "; ".join(dict.fromkeys(why for _, why in refused))
    if caps.device_type == "cuda":
        note = "no fast path on this device" + (f" ({note})" if note else "")
    out.append(Choice(eager_kernel(scheme), note, tuple(refused)))
    return out


def choose(caps: DeviceCaps, scheme: str, n: int, k: int, block: Block = None, requested: str = "auto",
           m: int = 0) -> Choice:
    """The kernel for one layer at ``m`` rows (0: small M). ``auto`` on CPU stays ``eager`` (the torch CPU kernels
    give the same numbers at the same speed; request ``torch`` to use them)."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; supported: {', '.join(SCHEMES)}")
    if requested == "eager":
        return Choice(eager_kernel(scheme))
    if n % GEMM_ALIGN or k % GEMM_ALIGN:
        return Choice(eager_kernel(scheme), f"N={n}, K={k} not multiples of {GEMM_ALIGN}")
    options = candidates(caps, scheme, n, k, block, m)
    best = Choice(eager_kernel(scheme)) if caps.device_type == "cpu" else options[0]
    if requested == "auto":
        return best
    family = REQUEST_FAMILY[requested]
    for c in options:
        if c.kernel.family == family:
            return c
    return Choice(best.kernel, f"requested {requested!r} is not available for {scheme} on {caps.describe()}",
                  best.refused)


def kernel_named(name: str, scheme: str, caps: DeviceCaps | None = None) -> Kernel:
    """The table entry called ``name`` that runs ``scheme`` (the first that fits ``caps`` when given): tests and
    benchmarks run kernels by name."""
    named = [k for k in KERNELS if k.name == name and scheme in k.schemes]
    if not named:
        raise ValueError(f"no kernel {name!r} for scheme {scheme!r}; kernels: {', '.join(IMPLEMENTATIONS)}")
    fits = [k for k in named if caps is not None and k.requires(caps, GEMM_ALIGN, GEMM_ALIGN, None) is None]
    return (fits or named)[0]
