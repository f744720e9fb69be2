"""The eager reference primitives (kernels/reference.py): scales, rounding bounds, block grids, GEMMs."""

from __future__ import annotations

import pytest
import torch

from comfyui_dit_quant.kernels import reference as ref

FP8_REL = 2.0**-4  # e4m3: 3 mantissa bits, round-to-nearest -> relative error <= 2^-4 for normal codes
FP8_SUB = 2.0**-10  # half the e4m3 subnormal spacing (2^-9), in code units


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _with_outliers(x: torch.Tensor) -> torch.Tensor:
    """Spread magnitudes over several decades so both normal and subnormal FP8 codes occur."""
    x = x.clone()
    x[::7] *= 30.0
    x[1::5] *= 0.01
    return x


def _fp8_bound(x: torch.Tensor, scale_full: torch.Tensor) -> torch.Tensor:
    return FP8_REL * x.abs() + FP8_SUB * scale_full


# --- activation quantization: shapes -------------------------------------------------------------------------


def test_per_tensor_scale_shape_dynamic_and_static() -> None:
    x = _randn(5, 48)
    q, s = ref.quant_fp8_per_tensor(x)
    assert q.dtype == ref.FP8_DTYPE and q.shape == x.shape
    assert s.shape == () and s.dtype == torch.float32
    assert s.item() == pytest.approx(x.abs().max().item() / 448.0)
    q2, s2 = ref.quant_fp8_per_tensor(x, torch.tensor([0.5]))
    assert s2.shape == () and s2.item() == 0.5
    assert torch.equal(q2.float(), ref.cast_fp8(x, torch.tensor(0.5)).float())


def test_per_token_scale_shape() -> None:
    x = _randn(7, 64)
    q, s = ref.quant_fp8_per_token(x)
    assert q.dtype == ref.FP8_DTYPE and s.shape == (7, 1) and s.dtype == torch.float32
    torch.testing.assert_close(s, x.abs().amax(dim=1, keepdim=True) / 448.0)


@pytest.mark.parametrize("k,group", [(256, 128), (200, 64), (48, 128)])
def test_per_group_scale_shape(k: int, group: int) -> None:
    x = _randn(6, k)
    q, s = ref.quant_fp8_per_group(x, group)
    assert q.shape == x.shape and s.shape == (6, ref.ceil_div(k, group)) and s.dtype == torch.float32
    for j in range(s.shape[1]):
        chunk = x[:, j * group:(j + 1) * group]
        torch.testing.assert_close(s[:, j], chunk.abs().amax(dim=1) / 448.0)


def test_int8_per_token_scale_shape() -> None:
    x = _randn(9, 32)
    q, s = ref.quant_int8_per_token(x)
    assert q.dtype == torch.int8 and s.shape == (9, 1) and s.dtype == torch.float32
    torch.testing.assert_close(s, x.abs().amax(dim=1, keepdim=True) / 127.0)
    assert q.abs().max() == 127


# --- dequantization error bounds -----------------------------------------------------------------------------


def test_fp8_per_tensor_error_bound() -> None:
    x = _with_outliers(_randn(64, 96))
    q, s = ref.quant_fp8_per_tensor(x)
    err = (q.float() * s - x).abs()
    assert (err <= _fp8_bound(x, s)).all()


def test_fp8_per_token_error_bound() -> None:
    x = _with_outliers(_randn(64, 96, seed=1))
    q, s = ref.quant_fp8_per_token(x)
    err = (q.float() * s - x).abs()
    assert (err <= _fp8_bound(x, s.expand_as(x))).all()


def test_fp8_per_group_error_bound() -> None:
    x = _with_outliers(_randn(33, 200, seed=2))
    q, s = ref.quant_fp8_per_group(x, 64)
    full = ref.expand_blocks(s, 33, 200, 1, 64)
    err = (q.float() * full - x).abs()
    assert (err <= _fp8_bound(x, full)).all()
    # The largest element of each group is exactly representable (it maps to 448).
    assert (q.float().abs().amax(dim=1) == 448.0).all()


def test_int8_error_bound_half_step() -> None:
    x = _with_outliers(_randn(40, 80, seed=3))
    q, s = ref.quant_int8_per_token(x)
    err = (q.float() * s - x).abs()
    assert (err <= 0.5 * s * (1 + 1e-6)).all()


# --- block grids ---------------------------------------------------------------------------------------------


def test_block_amax_ragged() -> None:
    x = _randn(300, 200, seed=4)
    amax = ref.block_amax(x, 128, 64)
    assert amax.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            blk = x[i * 128:(i + 1) * 128, j * 64:(j + 1) * 64]
            assert amax[i, j] == blk.abs().max()


def test_expand_blocks_ragged() -> None:
    grid = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    full = ref.expand_blocks(grid, 300, 200, 128, 64)
    assert full.shape == (300, 200)
    assert full[0, 0] == 0 and full[127, 63] == 0 and full[128, 64] == 5
    assert full[299, 199] == 11 and full[299, 0] == 8 and full[0, 199] == 3
    # Round trip: the amax grid of the expanded tensor is the grid itself.
    assert torch.equal(ref.block_amax(full, 128, 64), grid)


def test_block_amax_single_ragged_block() -> None:
    x = _randn(20, 30, seed=5)
    assert torch.equal(ref.block_amax(x, 128, 128), x.abs().max().reshape(1, 1))


# --- degenerate inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [
    ref.quant_fp8_per_tensor,
    ref.quant_fp8_per_token,
    lambda x: ref.quant_fp8_per_group(x, 32),
    ref.quant_int8_per_token,
])
def test_all_zero_input(fn) -> None:
    x = torch.zeros(4, 64)
    q, s = fn(x)
    assert torch.isfinite(s).all() and (s > 0).all()
    assert not q.float().any()


def test_all_zero_rows_among_nonzero() -> None:
    x = _randn(4, 64)
    x[2] = 0
    q, s = ref.quant_fp8_per_token(x)
    assert torch.isfinite(s).all() and not q[2].float().any()
    assert torch.isfinite(q.float()).all()


def test_fp8_saturates_at_448() -> None:
    x = torch.tensor([1000.0, -1000.0, 448.0, -500.0, 1e30, -1e30, 3.0])
    q = ref.cast_fp8(x, torch.tensor(1.0))
    assert q.float().tolist() == [448.0, -448.0, 448.0, -448.0, 448.0, -448.0, 3.0]
    # A static activation scale that is too small saturates instead of producing NaN.
    qs, _ = ref.quant_fp8_per_tensor(_randn(8, 16) * 100, torch.tensor(0.01))
    assert torch.isfinite(qs.float()).all() and qs.float().abs().max() == 448.0


def test_int8_saturates_at_127() -> None:
    q = ref.cast_int8(torch.tensor([500.0, -500.0, 126.4, 2.5]), torch.tensor(1.0))
    assert q.tolist() == [127, -127, 126, 2]  # round half to even


# --- GEMMs against an independent float64 computation -------------------------------------------------------


def _f64_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    out = x.double() @ w.double().t()
    return out if bias is None else out + bias.double()


@pytest.mark.parametrize("kind", ["fp8_tensor", "fp8_token", "int8"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_scaled_mm_matches_float64(kind: str, with_bias: bool) -> None:
    x, w = _randn(12, 64, seed=6), _randn(48, 64, seed=7)
    bias = _randn(48, seed=8) if with_bias else None
    if kind == "fp8_tensor":
        x_q, x_s = ref.quant_fp8_per_tensor(x)
        w_q, w_s = ref.quant_fp8_per_tensor(w)
    elif kind == "fp8_token":
        x_q, x_s = ref.quant_fp8_per_token(x)
        w_q, w_s2 = ref.quant_fp8_per_token(w)
        w_s = w_s2.reshape(-1)
    else:
        x_q, x_s = ref.quant_int8_per_token(x)
        w_q, w_s2 = ref.quant_int8_per_token(w)
        w_s = w_s2.reshape(-1)
    out = ref.scaled_mm(x_q, w_q, x_s, w_s, bias, torch.float32)
    x_d = x_q.double() * x_s.double()
    w_d = w_q.double() * (w_s.double().reshape(-1, 1) if w_s.numel() > 1 else w_s.double())
    expected = _f64_linear(x_d, w_d, bias)
    assert out.dtype == torch.float32 and out.shape == (12, 48)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


def test_scaled_mm_out_dtype() -> None:
    x_q, x_s = ref.quant_fp8_per_token(_randn(4, 32))
    w_q, w_s = ref.quant_fp8_per_token(_randn(16, 32, seed=1))
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        assert ref.scaled_mm(x_q, w_q, x_s, w_s.reshape(-1), None, dt).dtype == dt


@pytest.mark.parametrize("m,n,k,bn,bk", [(10, 300, 200, 128, 64), (3, 64, 48, 128, 128), (5, 96, 256, 32, 128)])
def test_block_scaled_mm_matches_float64(m: int, n: int, k: int, bn: int, bk: int) -> None:
    x, w, bias = _randn(m, k, seed=9), _randn(n, k, seed=10), _randn(n, seed=11)
    x_q, x_s = ref.quant_fp8_per_group(x, bk)
    w_s = ref.amax_to_scale(ref.block_amax(w, bn, bk), ref.FP8_MAX)
    w_q = ref.cast_fp8(w, ref.expand_blocks(w_s, n, k, bn, bk))
    out = ref.block_scaled_mm(x_q, w_q, x_s, w_s, bn, bk, bias, torch.float32)
    # Independent dequantization: loop over blocks in float64.
    x_d = x_q.double().clone()
    for j in range(x_s.shape[1]):
        x_d[:, j * bk:(j + 1) * bk] *= x_s[:, j:j + 1].double()
    w_d = w_q.double().clone()
    for i in range(w_s.shape[0]):
        for j in range(w_s.shape[1]):
            w_d[i * bn:(i + 1) * bn, j * bk:(j + 1) * bk] *= w_s[i, j].double()
    torch.testing.assert_close(out.double(), _f64_linear(x_d, w_d, bias), rtol=1e-5, atol=1e-5)
    assert (out.double() - _f64_linear(x, w, bias)).abs().mean() < 0.1 * _f64_linear(x, w, bias).abs().mean()


@pytest.mark.parametrize("block", [None, (32, 32), (128, 128)])
def test_weight_only_mm_matches_float64(block: tuple[int, int] | None) -> None:
    x, w, bias = _randn(7, 80, seed=12, dtype=torch.bfloat16), _randn(48, 80, seed=13), _randn(48, seed=14)
    if block is None:
        w_q, s2 = ref.quant_fp8_per_token(w)
        w_s = s2.reshape(-1)
        w_d = w_q.double() * w_s.double().reshape(-1, 1)
    else:
        w_s = ref.amax_to_scale(ref.block_amax(w, *block), ref.FP8_MAX)
        w_q = ref.cast_fp8(w, ref.expand_blocks(w_s, 48, 80, *block))
        w_d = w_q.double() * ref.expand_blocks(w_s.double(), 48, 80, *block)
    torch.testing.assert_close(ref.dequantize_weight(w_q, w_s, block, torch.float64), w_d)
    out = ref.weight_only_mm(x, w_q, w_s, block, bias, torch.float32)
    torch.testing.assert_close(out.double(), _f64_linear(x, w_d, bias), rtol=1e-5, atol=1e-5)
    assert ref.weight_only_mm(x, w_q, w_s, block, None, torch.bfloat16).dtype == torch.bfloat16


def test_dequantize_weight_scale_layouts() -> None:
    w = _randn(32, 48, seed=15)
    q, s = ref.quant_fp8_per_token(w)
    a = ref.dequantize_weight(q, s)  # [N, 1]
    b = ref.dequantize_weight(q, s.reshape(-1))  # [N]
    assert torch.equal(a, b)
    qt, st = ref.quant_fp8_per_tensor(w)
    assert torch.equal(ref.dequantize_weight(qt, st), qt.float() * st)
    assert ref.dequantize_weight(q, s, dtype=torch.bfloat16).dtype == torch.bfloat16
