"""``Kernel``: one entry of the kernel table — a name (what reports show), the schemes it runs, the devices it
is for, its requirements, and the function that runs it. Each backend module declares its entries (``KERNELS``);
``table.py`` orders them and chooses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .caps import DeviceCaps

Block = tuple[int, int] | None
# (x2 [M, K], weight [N, K], weight_scale, bias, input_scale, block, out_dtype) -> [M, N]
Run = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, Block,
                torch.dtype], torch.Tensor]
# (caps, N, K, block) -> why this kernel cannot run this layer here, or None when it can
Requires = Callable[[DeviceCaps, int, int, Block], "str | None"]


def always(caps: DeviceCaps, n: int, k: int, block: Block) -> str | None:
    return None


@dataclass(frozen=True)
class Kernel:
    """A kernel for ``schemes`` on ``devices`` (empty: every device). ``family`` is what a request selects
    ("torch", "triton", "npu", "eager"); ``note`` says why running it is a fallback ("" when it is the
    scheme's own fast path). ``tensor_scale``: its dynamic activation scale is one number over every row, so the
    op runs it once per sample of a batch (a CFG batch then gives what the cond and uncond passes give apart).
    ``max_m``: the kernel is chosen only for inputs of at most this many rows (None: any M)."""

    name: str
    family: str
    schemes: tuple[str, ...]
    devices: tuple[str, ...]
    run: Run
    requires: Requires = always
    note: str = ""
    tensor_scale: bool = False
    max_m: int | None = None

    def refusal(self, caps: DeviceCaps, n: int, k: int, block: Block, m: int = 0) -> str | None:
        """None when this kernel runs the layer on ``caps`` for ``m`` rows (0: small); otherwise why not."""
        if self.devices and caps.device_type not in self.devices:
            return f"not for {caps.device_type}"
        if self.max_m is not None and m > self.max_m:
            return f"M > {self.max_m}: dequantize + a bf16 GEMM is faster"
        return self.requires(caps, n, k, block)
