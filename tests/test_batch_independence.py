"""A CFG batch (cond + uncond in one call) gives what the two passes give apart, for every scheme and kernel
family that runs on this machine: dynamic activation scales never span samples."""

from __future__ import annotations

import pytest
import torch

from comfyui_dit_quant.quant.schemes import CHOICES

SCHEMES = [c.build("32x32" if c.uses_block else None) for c in CHOICES]


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.describe())
def test_cond_output_does_not_depend_on_uncond(scheme, backend: str) -> None:
    gen = torch.Generator().manual_seed(0)
    n, k, tokens = 64, 96, 24
    stored = scheme.quantize(torch.randn(n, k, generator=gen))
    bias = torch.randn(n, generator=gen).to(torch.bfloat16)
    cond = torch.randn(1, tokens, k, generator=gen).to(torch.bfloat16)
    uncond = (30 * torch.randn(1, tokens, k, generator=gen)).to(torch.bfloat16)  # much larger activations

    def run(x: torch.Tensor) -> torch.Tensor:
        return scheme.linear(x, stored["weight"], stored["weight_scale"], bias, None, backend)

    alone = run(cond)
    batched = run(torch.cat([cond, uncond]))
    assert batched.shape == (2, tokens, n)
    assert torch.equal(batched[:1], alone), (batched[:1].float() - alone.float()).abs().max()
    assert torch.equal(batched[1:], run(uncond))


def test_static_input_scale_is_one_gemm_and_shared() -> None:
    """With a calibrated input scale nothing depends on the batch anyway: one call, the same numbers up to the fp32
    summation order of the CPU GEMM (which may block M = 10 and M = 5 differently: bit-equal on some CPUs, not on
    others). A batch-dependent activation scale would be off by ~1e-2 relative, four orders above the bound."""
    scheme = next(c.build() for c in CHOICES if c.scheme == "fp8_tensor")
    gen = torch.Generator().manual_seed(1)
    stored = scheme.quantize(torch.randn(32, 48, generator=gen))
    x = torch.randn(2, 5, 48, generator=gen)
    s = torch.tensor(0.01)
    both = scheme.linear(x, stored["weight"], stored["weight_scale"], None, s)
    alone = scheme.linear(x[:1], stored["weight"], stored["weight_scale"], None, s)
    assert ((both[:1] - alone).abs().max() / alone.abs().max()).item() < 1e-6
