"""The interface every quantization scheme implements.

A scheme knows three things (after vLLM's quantization methods): how to turn a high-precision ``[N, K]`` weight
into the tensors it stores (``quantize``), how to run the linear op on those tensors (``linear``, always through
``kernels.dispatch.quant_linear``), and how to describe itself (``config`` / ``describe``) so that a checkpoint
can say which scheme wrote a layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from ...kernels import reference as ref
from ...kernels.dispatch import quant_linear
from ...kernels.table import GEMM_ALIGN
from ..finite import all_finite
from .block_size import format_block_size

# FP8 and INT8 tensor-core GEMMs (cuBLASLt, torch._int_mm, the Triton kernels) need K and N multiples of 16.
# Weights are quantized in row chunks of about this many elements, so the float32 working copies stay small
# (a streaming conversion then holds about one weight, not several float32 copies of it).
CHUNK_ELEMS = 1 << 22


def row_chunks(n_rows: int, n_cols: int, multiple: int = 1) -> list[slice]:
    """Row slices of about ``CHUNK_ELEMS`` elements, each a multiple of ``multiple`` rows (but the last)."""
    step = max(multiple, (CHUNK_ELEMS // max(n_cols, 1)) // multiple * multiple)
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


class NonFiniteWeightError(ValueError):
    """A weight holds NaN or inf: quantizing it would silently produce garbage."""


class Scheme(ABC):
    """One quantization scheme (see the subclasses for the stored tensors of each)."""

    name: ClassVar[str]
    weight_dtype: ClassVar[torch.dtype] = ref.FP8_DTYPE
    quantizes_activations: ClassVar[bool] = True
    # Rows that share scales (1: per-row scales; bn: block rows). None: scales depend on the whole weight.
    row_group: int | None = 1

    @property
    def block(self) -> tuple[int, int] | None:
        """Weight block size ``(bn, bk)`` for block-scaled weights, else None."""
        return None

    def unsupported_reason(self, out_features: int, in_features: int) -> str | None:
        """Why this scheme cannot take a layer of this shape, or None when it can."""
        if self.quantizes_activations and (in_features % GEMM_ALIGN or out_features % GEMM_ALIGN):
            return (f"shape [{out_features}, {in_features}]: N and K must be multiples of {GEMM_ALIGN} "
                    "for quantized GEMMs")
        return None

    def quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """Quantize an ``[N, K]`` weight into the stored tensors (``weight`` codes and float32 ``weight_scale``)."""
        if weight.dim() != 2:
            raise ValueError(f"expected a 2-D [out, in] weight, got shape {tuple(weight.shape)}")
        if not all_finite(weight):
            raise NonFiniteWeightError("weight contains NaN or inf")
        weight = weight.detach()
        if weight.dtype == self.weight_dtype == ref.FP8_DTYPE:
            return self.keep_fp8_codes(weight)
        # Other plain FP8 casts (e5m2 codes, or INT8 schemes) are requantized from their values, per row chunk.
        src = (lambda w: w.float()) if weight.element_size() == 1 else (lambda w: w)
        if self.row_group is None or weight.numel() <= CHUNK_ELEMS:
            return self._quantize(src(weight))
        parts = [self._quantize(src(weight[rows])) for rows in row_chunks(*weight.shape, self.row_group)]
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}

    def keep_fp8_codes(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """A plain e4m3 cast (codes with no scale, e.g. ``*_fp8_e4m3fn`` files) stored as it is under unit scales of
        this scheme's layout: the weights stay exactly the file's (no second rounding), the activations get this
        scheme's handling."""
        shape = self.empty_tensors(*weight.shape)["weight_scale"].shape
        return {"weight": weight.clone(), "weight_scale": torch.ones(shape, dtype=torch.float32, device=weight.device)}

    def empty_tensors(self, out_features: int, in_features: int) -> dict[str, torch.Tensor]:
        """Meta tensors with the shapes and dtypes ``quantize`` returns for an [N, K] weight."""
        return self._quantize(torch.zeros(out_features, in_features, device="meta"))

    @abstractmethod
    def _quantize(self, weight: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def dequantize(self, weight: torch.Tensor, weight_scale: torch.Tensor,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The high-precision weight the stored tensors stand for."""
        return ref.dequantize_weight(weight, weight_scale, self.block, dtype)

    def linear(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        weight_scale: torch.Tensor,
        bias: torch.Tensor | None = None,
        input_scale: torch.Tensor | None = None,
        backend: str = "auto",
    ) -> torch.Tensor:
        """``x @ W.T + bias`` through the pack's dispatch."""
        bn, bk = self.block or (0, 0)
        return quant_linear(x, weight, weight_scale, bias, input_scale, self.name, bn, bk, backend)

    def config(self) -> dict[str, Any]:
        """JSON-able description, enough to rebuild the scheme with ``schemes.from_config``."""
        return {"scheme": self.name}

    @property
    def label(self) -> str:
        """What users see for this scheme (node widget, CLI help, summaries): set by each scheme."""
        return self.name

    def describe(self) -> str:
        """The label, with the block size where the scheme has one."""
        return f"{self.label} {format_block_size(self.block)}" if self.block else self.label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scheme) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.config().items())))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"
