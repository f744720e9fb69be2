"""FP8 weight storage for whole modules (quant/storage/), without ComfyUI: ComfyUI's layer protocol is
imitated by small duck-typed ops (``comfy_cast_weights``, ``forward_comfy_cast_weights``, ``weight_function``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from comfyui_dit_quant.kernels.reference import FP8_DTYPE
from comfyui_dit_quant.quant.storage import (
    apply_fp8_storage,
    dequantize_weight,
    first_last_layers,
    is_fp8_stored,
    quantize_weight,
)


class CastOp:  # ComfyUI's CastWeightBiasOp
    comfy_cast_weights = False
    weight_function: list = []
    bias_function: list = []


class OpLinear(nn.Linear, CastOp):  # shape of comfy.ops.disable_weight_init.Linear
    def forward_comfy_cast_weights(self, input):
        w = self.weight.to(input.dtype)
        for f in self.weight_function:
            w = f(w)
        return F.linear(input, w, None if self.bias is None else self.bias.to(input.dtype))

    def forward(self, *args, **kwargs):
        if self.comfy_cast_weights or self.weight_function or self.bias_function:
            return self.forward_comfy_cast_weights(*args, **kwargs)
        return super().forward(*args, **kwargs)


class OpConv3d(nn.Conv3d, CastOp):  # comfy.ops Conv3d with its ``autopad`` extension
    def _conv_forward(self, input, weight, bias, autopad=None, *args, **kwargs):
        if autopad == "causal_zero":
            weight = weight[:, :, -input.shape[2]:, :, :]
        return super()._conv_forward(input, weight, bias, *args, **kwargs)

    def forward_comfy_cast_weights(self, input, autopad=None):
        w = self.weight.to(input.dtype)
        for f in self.weight_function:
            w = f(w)
        return self._conv_forward(input, w, self.bias.to(input.dtype), autopad=autopad)

    def forward(self, *args, **kwargs):
        if self.comfy_cast_weights or self.weight_function or "autopad" in kwargs:
            return self.forward_comfy_cast_weights(*args, **kwargs)
        return super().forward(*args, **kwargs)


class CausalConv3d(OpConv3d):  # a subclass with its own forward (like Wan's VAE): it must keep working
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._pad = (1, 1, 1, 1, 2, 0)

    def forward(self, x):
        return super().forward(F.pad(x, self._pad))


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, 16, 3, padding=1)
        self.conv1d = nn.Conv1d(16, 16, 3, padding=1)
        self.causal = CausalConv3d(16, 16, 3)
        self.norm = nn.GroupNorm(4, 16)
        self.head = nn.Sequential(OpLinear(16, 32), nn.GELU(), nn.Linear(32, 8))
        self.emb = nn.Embedding(10, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)  # [B,16,H,W]
        b, c, hh, ww = h.shape
        h = self.conv1d(h.flatten(2)).reshape(b, c, hh, ww)
        h = self.causal(h.unsqueeze(2).repeat(1, 1, 3, 1, 1)).mean(2)
        h = self.norm(h).mean((2, 3)) + self.emb.weight[1].to(h.dtype)
        return self.head(h)


def names(report, kind: str) -> list[str]:
    """Layers of one kind in a storage report (stored, already, ignored, not eligible, first-last)."""
    return [r.name for r in report.of_kind(kind)]


def reasons(report, kind: str) -> dict[str, str]:
    return {r.name: r.reason for r in report.of_kind(kind)}


def make_net(dtype: torch.dtype = torch.float32, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().to(dtype).eval()


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def snapshot(m: nn.Module) -> dict:
    return {k: (v.clone(), v.data_ptr(), v.dtype) for k, v in m.state_dict(keep_vars=True).items()}


X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
LAYERS = ["conv_in", "conv1d", "causal", "head.0", "head.2"]


# --- tensor level ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3), (16, 8, 3, 3), (8, 4, 3, 3, 3)])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_quantize_error_bound_and_scale_shape(shape: tuple[int, ...], granularity: str) -> None:
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * torch.logspace(-2, 1, shape[0]).reshape(
        -1, *([1] * (len(shape) - 1)))
    codes, scale = quantize_weight(w, granularity)
    assert codes.dtype == FP8_DTYPE and codes.shape == w.shape and scale.dtype == torch.float32
    assert scale.shape == ((shape[0],) + (1,) * (len(shape) - 1) if granularity == "channel" else ())
    deq = dequantize_weight(codes, scale, torch.float32)
    # e4m3 round to nearest: half an ulp (2^-4 relative) for normals, 2^-10 * scale in the subnormal range
    assert ((deq - w).abs() <= w.abs() * 2**-4 + scale * 2**-10 + 1e-12).all()
    assert cos(deq, w) > 0.999
    # the largest magnitude (per row or overall) is representable exactly at 448 * scale
    assert torch.allclose(deq.abs().amax(), w.abs().amax(), rtol=1e-6)


def test_per_channel_beats_per_tensor_on_uneven_rows() -> None:
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 0, 32)[:, None]
    errs = {g: ((dequantize_weight(*quantize_weight(w, g), torch.float32) - w).norm() / w.norm()).item()
            for g in ("channel", "tensor")}
    assert errs["channel"] < errs["tensor"]


def test_bad_granularity() -> None:
    with pytest.raises(ValueError, match="granularity"):
        quantize_weight(torch.ones(2, 2), "block")
    with pytest.raises(ValueError, match="granularity"):
        apply_fp8_storage(make_net(), "block")


# --- module trees ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_output_close_and_compute_in_original_dtype(dtype: torch.dtype, granularity: str) -> None:
    net = make_net(dtype)
    ref = net(X.to(dtype))
    new, report, _ = apply_fp8_storage(net, granularity)
    out = new(X.to(dtype))
    assert out.dtype == dtype
    assert cos(out, ref) >= 0.995  # five stacked FP8 layers in a toy net with cancellations
    gen = torch.Generator().manual_seed(2)
    for name, shape in [("conv_in", (4, 3, 8, 8)), ("conv1d", (4, 16, 12)), ("head.0", (8, 16)), ("head.2", (8, 32))]:
        x = torch.randn(shape, generator=gen).to(dtype)
        y_ref, y = net.get_submodule(name)(x), new.get_submodule(name)(x)
        assert y.dtype == dtype and cos(y, y_ref) >= 0.999, name  # one layer: FP8 storage error only
    y = torch.randn(2, 16, 3, 6, 6, generator=gen).to(dtype)
    assert cos(new.causal(y), net.causal(y)) >= 0.999
    assert sorted(names(report, "stored")) == sorted(LAYERS)
    for name in LAYERS:
        layer = new.get_submodule(name)
        assert is_fp8_stored(layer) and layer.weight.dtype == FP8_DTYPE and layer.fp8_orig_dtype == dtype
        assert isinstance(layer, type(net.get_submodule(name)))  # subclass of the original class
    assert type(new.norm) is nn.GroupNorm and new.emb.weight.dtype == dtype


def test_input_tree_untouched_and_tensors_shared_not_copied() -> None:
    net = make_net()
    before = snapshot(net)
    classes = {n: type(m) for n, m in net.named_modules()}
    ref = net(X)
    new, _, _ = apply_fp8_storage(net, "channel")
    after = snapshot(net)
    assert before.keys() == after.keys()
    for k, (t, ptr, dtype) in before.items():
        assert torch.equal(t, after[k][0]) and ptr == after[k][1] and dtype == after[k][2], k
    assert classes == {n: type(m) for n, m in net.named_modules()}
    assert torch.equal(net(X), ref)
    # unconverted tensors are shared (same storage, new Parameter objects) ...
    assert new.norm.weight.data_ptr() == net.norm.weight.data_ptr() and new.norm.weight is not net.norm.weight
    assert new.norm is not net.norm and new.head is not net.head
    # ... so moving / casting the new tree leaves the old one where it is
    new.double()
    assert net.norm.weight.dtype == torch.float32 and new.norm.weight.dtype == torch.float64
    assert new.conv_in.weight.dtype == FP8_DTYPE and new.conv_in.weight_scale.dtype == torch.float32
    assert torch.equal(net(X), ref)


def test_applying_twice_equals_once() -> None:
    net = make_net()
    once, r1, _ = apply_fp8_storage(net, "channel")
    twice, r2, _ = apply_fp8_storage(once, "tensor")  # already-stored layers are kept as they are
    assert len(names(r1, "stored")) == 5 and not names(r1, "already")
    assert not names(r2, "stored") and sorted(names(r2, "already")) == sorted(LAYERS)
    assert r2.bytes_before == r2.bytes_after
    assert torch.equal(once(X), twice(X))
    s1, s2 = once.state_dict(), twice.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k].float(), s2[k].float()) for k in s1)
    assert twice.conv_in.fp8_granularity == "channel"


def test_ignore_list_and_unused_patterns() -> None:
    net = make_net()
    new, report, _ = apply_fp8_storage(net, "channel", ignore="causal, head.2\nnot_a_layer, re:^conv1")
    assert sorted(names(report, "stored")) == ["conv_in", "head.0"]
    assert reasons(report, "ignored") == {"causal": "ignored by pattern 'causal'", "head.2": "ignored by pattern "
                                          "'head.2'", "conv1d": "ignored by pattern 're:^conv1'"}
    assert report.unused_patterns == ["not_a_layer"]
    assert new.causal.weight.dtype == torch.float32 and not is_fp8_stored(new.causal)
    assert "not_a_layer" in report.summary()
    with pytest.raises(ValueError, match="invalid regex"):
        apply_fp8_storage(net, ignore="re:([")


def test_bytes_reported() -> None:
    net = make_net()
    new, report, _ = apply_fp8_storage(net, "channel")
    w_bytes = sum(net.get_submodule(n).weight.numel() for n in LAYERS)
    out_ch = sum(net.get_submodule(n).weight.shape[0] for n in LAYERS)
    assert sum(r.nbytes for r in report.of_kind("stored")) == w_bytes + 4 * out_ch  # codes + fp32 scales
    assert report.bytes_before == sum(t.nbytes for t in net.state_dict().values())  # the whole tree
    assert report.bytes_after == sum(t.nbytes for t in new.state_dict().values())
    saved = report.bytes_before - report.bytes_after
    assert saved == 3 * w_bytes - 4 * out_ch > 0
    text = report.summary()
    assert f"saved {saved / 2**20:.2f} MB" in text and text.startswith("FP8 weight storage (per-output-channel")
    assert "layers quantized: 5, kept in high precision: 0" in text.splitlines()[0]
    _, per_tensor, _ = apply_fp8_storage(net, "tensor")
    assert sum(r.nbytes for r in per_tensor.of_kind("stored")) == w_bytes + 4 * len(LAYERS)


def test_state_dict_holds_codes_and_scales() -> None:
    new, _, _ = apply_fp8_storage(make_net(), "channel")
    sd = new.state_dict()
    assert sd["head.0.weight"].dtype == FP8_DTYPE and sd["head.0.weight_scale"].shape == (32, 1)
    assert sd["causal.weight_scale"].shape == (16, 1, 1, 1, 1)
    assert not any("loaded_scale" in k for k in sd)


def test_skips_non_float_and_custom_layers() -> None:
    class Custom(nn.Linear):  # not a ComfyUI op and not a plain torch class: forward unknown, left alone
        def forward(self, x):
            return F.linear(x, self.weight * 2)

    net = nn.Sequential(Custom(4, 4), nn.Linear(4, 4))
    net[1].weight.data = net[1].weight.data.to(FP8_DTYPE)
    new, report, _ = apply_fp8_storage(net)
    assert reasons(report, "not eligible") == {"0": "custom layer class Custom",
                                               "1": "weight is already float8_e4m3fn"}
    assert "not eligible: custom layer class Custom x1" in report.summary()
    assert type(new[0]) is Custom


def test_tied_modules_and_parameters_stay_tied() -> None:
    lin = nn.Linear(8, 8)
    net = nn.ModuleDict({"a": lin, "b": lin, "emb": nn.Embedding(4, 8)})
    net["out"] = nn.Linear(4, 8)
    net["out"].weight = nn.Parameter(net["emb"].weight.data.T.contiguous())
    net["emb2"] = nn.Embedding(4, 8)
    net["emb2"].weight = net["emb"].weight
    new, report, _ = apply_fp8_storage(net, ignore="out")
    assert new["a"] is new["b"] and names(report, "stored") == ["a"]
    assert new["emb"].weight is new["emb2"].weight and new["emb"].weight is not net["emb"].weight


def test_source_and_device_hooks() -> None:
    net = make_net()
    seen: list[str] = []

    def source(key: str, t: torch.Tensor) -> torch.Tensor:
        seen.append(key)
        return torch.zeros_like(t) if key == "head.2.bias" else t

    new, _, _ = apply_fp8_storage(net, source=source, device="cpu")
    assert "head.2.weight" in seen and "norm.weight" in seen
    assert torch.count_nonzero(new.head[2].bias) == 0 and torch.count_nonzero(net.head[2].bias) > 0


# --- keep_first_last: the first / last layer of each top-level part ------------------------------------
# ComfyUI-free stand-ins with the module trees of ComfyUI's VAEs (comfy/taesd/taesd.py, comfy/ldm/wan/vae.py,
# comfy/ldm/models/autoencoder.py), small, in the same registration order; the integration tier checks the rule
# on the real classes against the layers they run first / last.


def _conv(i: int, o: int, **kw) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, padding=1, **kw)


class TaesdBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


class TaesdLike(nn.Module):  # TAESD: taesd_encoder / taesd_decoder (nn.Sequential), two scalar parameters
    def __init__(self) -> None:
        super().__init__()
        self.taesd_encoder = nn.Sequential(_conv(3, 8), TaesdBlock(8), _conv(8, 8, stride=2, bias=False),
                                           TaesdBlock(8), _conv(8, 4))
        self.taesd_decoder = nn.Sequential(nn.Tanh(), _conv(4, 8), nn.ReLU(), TaesdBlock(8),
                                           nn.Upsample(scale_factor=2), _conv(8, 8, bias=False), TaesdBlock(8),
                                           _conv(8, 3))
        self.vae_scale = nn.Parameter(torch.tensor(1.0))
        self.vae_shift = nn.Parameter(torch.tensor(0.0))

    def encode(self, x):
        return self.taesd_encoder(x)

    def decode(self, z):
        return self.taesd_decoder(z)


class WanResBlock(nn.Module):  # residual registered before shortcut, but shortcut runs first
    def __init__(self, i: int, o: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(nn.GroupNorm(1, i), nn.SiLU(), CausalConv3d(i, o, 3),
                                      nn.GroupNorm(1, o), nn.SiLU(), CausalConv3d(o, o, 3))
        self.shortcut = OpConv3d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x):
        h = self.shortcut(x)
        return self.residual(x) + h


class WanCoder(nn.Module):  # Encoder3d / Decoder3d: conv1, blocks, head = (norm, SiLU, conv)
    def __init__(self, i: int, c: int, o: int) -> None:
        super().__init__()
        self.conv1 = CausalConv3d(i, c, 3)
        self.middle = nn.Sequential(WanResBlock(c, 2 * c), nn.Identity(), WanResBlock(2 * c, c))
        self.head = nn.Sequential(nn.GroupNorm(1, c), nn.SiLU(), CausalConv3d(c, o, 3))

    def forward(self, x):
        return self.head(self.middle(self.conv1(x)))


class WanLike(nn.Module):  # WanVAE: encoder, conv1 / conv2 (1x1 quant convs at the top level), decoder
    def __init__(self, z: int = 4) -> None:
        super().__init__()
        self.encoder = WanCoder(3, 8, 2 * z)
        self.conv1 = OpConv3d(2 * z, 2 * z, 1)
        self.conv2 = OpConv3d(z, z, 1)
        self.decoder = WanCoder(z, 8, 3)

    def encode(self, x):
        return self.conv1(self.encoder(x)).chunk(2, dim=1)[0]

    def decode(self, z):
        return self.decoder(self.conv2(z))


class KLLike(nn.Module):  # AutoencoderKL without quant convs (Flux / SD3), a weightless regularizer
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"conv_in": _conv(3, 8), "down": nn.ModuleList([_conv(8, 8, stride=2)]),
                                      "norm_out": nn.GroupNorm(2, 8), "conv_out": _conv(8, 8)})
        self.decoder = nn.ModuleDict({"conv_in": _conv(4, 8), "up": nn.ModuleList([_conv(8, 8), _conv(8, 8)]),
                                      "norm_out": nn.GroupNorm(2, 8), "conv_out": _conv(8, 3)})
        self.regularization = nn.Identity()

    def encode(self, x):
        e = self.encoder
        return e["conv_out"](e["norm_out"](e["down"][0](e["conv_in"](x))))[:, :4]

    def decode(self, z):
        d = self.decoder
        h = d["conv_in"](z)
        for up in reversed(d["up"]):  # run in reverse registration order inside the part: first / last unchanged
            h = up(h)
        return d["conv_out"](d["norm_out"](h))


STANDINS = {
    "taesd": (TaesdLike, (1, 3, 8, 8), {"taesd_encoder.0": "first layer of taesd_encoder",
                                        "taesd_encoder.4": "last layer of taesd_encoder",
                                        "taesd_decoder.1": "first layer of taesd_decoder",
                                        "taesd_decoder.7": "last layer of taesd_decoder"}),
    "wan": (WanLike, (1, 3, 2, 6, 6), {"encoder.conv1": "first layer of encoder",
                                       "encoder.head.2": "last layer of encoder",
                                       "conv1": "only layer of conv1", "conv2": "only layer of conv2",
                                       "decoder.conv1": "first layer of decoder",
                                       "decoder.head.2": "last layer of decoder"}),
    "kl": (KLLike, (1, 3, 8, 8), {"encoder.conv_in": "first layer of encoder",
                                  "encoder.conv_out": "last layer of encoder",
                                  "decoder.conv_in": "first layer of decoder",
                                  "decoder.conv_out": "last layer of decoder"}),
}
WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)


def _run_order(root: nn.Module, x: torch.Tensor) -> list[str]:
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda *_, n=n: order.append(n))
             for n, m in root.named_modules() if isinstance(m, WEIGHTED)]
    with torch.no_grad():
        root.decode(root.encode(x))
    for h in hooks:
        h.remove()
    return order


@pytest.mark.parametrize("kind", list(STANDINS))
def test_first_last_rule_picks_exactly_first_and_last_of_each_part(kind: str) -> None:
    cls, shape, expected = STANDINS[kind]
    torch.manual_seed(0)
    root = cls().eval()
    picks = first_last_layers(root)
    assert picks == expected and list(picks) == list(expected)  # in part / registration order
    # registration order is forward order where it matters: each part's first / last layer run
    order = _run_order(root, torch.rand(shape))
    for part in {n.split(".")[0] for n in order}:
        ran = [n for n in order if n.split(".")[0] == part]
        assert {ran[0], ran[-1]} == {n for n in picks if n.split(".")[0] == part}, part


def test_first_last_rule_wrappers_single_layers_and_no_layers() -> None:
    wan = WanLike()
    # a wrapper holding the model alone is looked through; names stay relative to the root
    wrapped = nn.Module()
    wrapped.inner = nn.Module()
    wrapped.inner.model = wan
    wrapped.inner.norm = nn.GroupNorm(1, 4)  # no weighted layer: not a part
    picks = first_last_layers(wrapped)
    assert picks == {f"inner.model.{k}": v.replace(" of ", " of inner.model.")
                     for k, v in STANDINS["wan"][2].items()}
    assert first_last_layers(nn.Linear(4, 4)) == {"": "only layer of the model"}
    assert first_last_layers(nn.Sequential(nn.ReLU(), nn.Linear(4, 4))) == {"1": "only layer of 1"}
    assert first_last_layers(nn.Sequential(nn.ReLU(), nn.GroupNorm(1, 4))) == {}
    # a module reachable twice keeps its first name; a transposed conv counts as the part's last layer
    shared = nn.Linear(4, 4)
    tied = nn.Module()
    tied.a = nn.Sequential(shared, nn.Linear(4, 4))
    tied.b = nn.Sequential(nn.Linear(4, 4), shared, nn.ConvTranspose2d(4, 4, 2))
    assert first_last_layers(tied) == {"a.0": "first layer of a", "a.1": "last layer of a",
                                       "b.0": "first layer of b", "b.2": "last layer of b"}


@pytest.mark.parametrize("kind", list(STANDINS))
def test_keep_first_last_keeps_them_in_the_original_dtype(kind: str) -> None:
    cls, shape, expected = STANDINS[kind]
    torch.manual_seed(0)
    root = cls().eval()
    before = snapshot(root)
    everything, r_all, _ = apply_fp8_storage(root, "channel")
    new, report, _ = apply_fp8_storage(root, "channel", keep_first_last=True)
    assert not names(r_all, "first-last")
    assert reasons(report, "first-last") == expected and names(report, "first-last") == list(expected)
    assert set(names(report, "stored")) == set(names(r_all, "stored")) - set(expected)
    kept_bytes = sum(r.nbytes for r in report.of_kind("first-last"))
    assert kept_bytes == sum(root.get_submodule(n).weight.nbytes for n in expected)
    assert report.bytes_after == r_all.bytes_after + kept_bytes - sum(
        everything.get_submodule(n).weight.nbytes + everything.get_submodule(n).weight_scale.nbytes
        for n in expected)
    for name in expected:
        layer = new.get_submodule(name)
        assert not is_fp8_stored(layer) and type(layer) is type(root.get_submodule(name))
        assert layer.weight.dtype == torch.float32
        assert layer.weight.data_ptr() == root.get_submodule(name).weight.data_ptr()  # shared, not copied
    text = report.summary()
    assert f"kept: 0 by ignore list, {len(expected)} first/last layers (" in text
    for name, why in expected.items():
        assert f"  kept {name} {list(root.get_submodule(name).weight.shape)}: {why}" in text
    assert "first/last" not in r_all.summary()  # the old summary when the rule is off
    # input untouched; kept layers are exact, so the result is at least as close as all-FP8 here
    after = snapshot(root)
    assert all(torch.equal(t, after[k][0]) and p == after[k][1] for k, (t, p, _) in before.items())
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = root.decode(root.encode(x))
        assert cos(new.decode(new.encode(x)), ref) >= 0.99
        first_in = next(iter(expected))  # the encoder's first layer, on the image: exactly as before
        assert torch.equal(new.get_submodule(first_in)(x), root.get_submodule(first_in)(x))


def test_keep_first_last_with_ignore_list_on_top_and_twice_equals_once() -> None:
    torch.manual_seed(0)
    root = WanLike().eval()
    new, report, _ = apply_fp8_storage(root, "channel", ignore="encoder.conv1, decoder.middle.0, nothing",
                                       keep_first_last=True)
    # a layer named by both: reported as ignored (the user's list first); the rule keeps the rest of its picks
    by = "ignored by pattern "
    assert reasons(report, "ignored") == {"encoder.conv1": by + "'encoder.conv1'", "decoder.middle.0.residual.2":
                                          by + "'decoder.middle.0'", "decoder.middle.0.residual.5":
                                          by + "'decoder.middle.0'", "decoder.middle.0.shortcut":
                                          by + "'decoder.middle.0'"}
    assert names(report, "first-last") == ["encoder.head.2", "conv1", "conv2", "decoder.conv1", "decoder.head.2"]
    assert report.unused_patterns == ["nothing"]
    all_layers = [n for n, m in root.named_modules() if isinstance(m, WEIGHTED)]
    assert sorted(names(report, "stored")) == sorted(set(all_layers) - set(names(report, "ignored"))
                                                     - set(names(report, "first-last")))
    assert "kept: 4 by ignore list, 5 first/last layers" in report.summary()
    # applying twice (same settings, or the rule then no rule) equals once: FP8 layers stay, kept ones are kept again
    twice, r2, _ = apply_fp8_storage(new, "channel", ignore="encoder.conv1, decoder.middle.0", keep_first_last=True)
    assert not names(r2, "stored") and sorted(names(r2, "already")) == sorted(names(report, "stored"))
    assert reasons(r2, "first-last") == reasons(report, "first-last")
    x = torch.rand(1, 3, 2, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(twice.decode(twice.encode(x)), new.decode(new.encode(x)))
    s1, s2 = new.state_dict(), twice.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k].float(), s2[k].float()) for k in s1)
    # the rule after an all-layers pass: everything is already FP8 and stays so
    every, _, _ = apply_fp8_storage(root, "channel")
    _, r3, _ = apply_fp8_storage(every, "channel", keep_first_last=True)
    assert not names(r3, "stored") and not names(r3, "first-last") and len(names(r3, "already")) == len(all_layers)


# --- ComfyUI protocol -----------------------------------------------------------------------------------


def test_cast_flag_pinned_and_weight_functions_see_dequantized_weight() -> None:
    net = make_net()
    new, _, _ = apply_fp8_storage(net)
    layer = new.head[0]
    layer.comfy_cast_weights = False  # ModelPatcher's low-VRAM bookkeeping: ignored
    assert layer.comfy_cast_weights is True
    x = torch.randn(3, 16)
    base = layer(x)
    layer.weight_function = [lambda w: w * 2]
    doubled = layer(x)
    b = layer.bias
    assert torch.allclose(doubled - b, 2 * (base - b), atol=1e-5)
    conv = new.causal
    y = torch.randn(1, 16, 3, 6, 6)
    c_base = conv(y)
    conv.weight_function = [lambda w: torch.zeros_like(w)]
    assert torch.allclose(conv(y), conv.bias.reshape(1, -1, 1, 1, 1).expand_as(c_base), atol=1e-6)
    # a plain ConvNd.forward call (bypassing ComfyUI's routing) still dequantizes
    del conv.weight_function
    assert torch.allclose(nn.Conv3d.forward(conv, F.pad(y, conv._pad)), c_base, atol=1e-6)


def test_lora_contract_convert_set_and_backup_restore() -> None:
    new, _, _ = apply_fp8_storage(make_net(), "channel")
    layer = new.head[0]
    x = torch.randn(3, 16)
    base = layer(x)
    backup = layer.weight.detach().clone()
    scale0 = layer.weight_scale.clone()
    # ModelPatcher.patch_weight_to_device: codes cast to the LoRA dtype -> convert -> patch -> set
    w = layer.convert_weight(layer.weight.to(torch.float32, copy=True), inplace=True)
    assert torch.equal(w, dequantize_weight(backup, scale0, torch.float32))
    delta = torch.randn_like(w) * w.abs().amax() * 3  # grows the range: needs a fresh scale
    layer.set_weight(w + delta, inplace_update=False, seed=0)
    assert layer.weight.dtype == FP8_DTYPE and not torch.equal(layer.weight_scale, scale0)
    assert cos(layer.fp8_dequantized_weight(torch.float32), w + delta) > 0.999
    # unpatch: comfy.utils.set_attr_param(model, key, backup) puts the codes back, the scale follows
    layer.weight = nn.Parameter(backup, requires_grad=False)
    assert torch.equal(layer.weight_scale, scale0) and torch.equal(layer(x), base)
    # in-place / return_weight: codes under the current scale
    codes = layer.set_weight(w, return_weight=True)
    assert torch.equal(codes.view(torch.uint8), backup.view(torch.uint8))
    layer.set_weight(w, inplace_update=True)
    assert torch.equal(layer.weight.view(torch.uint8), backup.view(torch.uint8)) and torch.equal(layer(x), base)


def test_dtype_cast_keeps_fp8_and_device_move_moves_everything() -> None:
    new, _, _ = apply_fp8_storage(make_net(), "tensor")
    new.to(torch.bfloat16)
    assert new.conv_in.weight.dtype == FP8_DTYPE and new.conv_in.weight_scale.dtype == torch.float32
    assert new.conv_in.bias.dtype == torch.bfloat16 and new.conv_in.fp8_orig_dtype == torch.float32
    out = new(X.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    new.to("meta")
    assert new.conv_in.weight.device.type == "meta" and new.conv_in.weight.dtype == FP8_DTYPE
    assert new.conv_in.loaded_scale.device.type == "meta"
