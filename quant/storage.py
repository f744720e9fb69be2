"""FP8 weight *storage* for whole modules (VAE, text encoders): FP8 e4m3 codes + float32 scale, dequantized at
forward so every matmul / convolution still runs in the layer's original dtype.

No ComfyUI import: this module speaks ComfyUI's layer protocol only by duck typing (``comfy_cast_weights``,
``forward_comfy_cast_weights``, ``weight_function`` / ``bias_function``, ``convert_weight`` / ``set_weight``).

- ``quantize_weight`` / ``dequantize_weight``: per-tensor scale (shape ``[]``) or one scale per output channel
  (shape ``[out, 1, ...]``, broadcasting against Linear ``[out, in]`` and Conv ``[out, in, *k]`` weights).
- ``apply_fp8_storage(root, ...)`` returns a **new** module tree: the chosen Linear / Conv1d/2d/3d layers are
  new modules of a subclass of their own class (so subclass behaviour such as a causal Conv3d's padding stays),
  holding FP8 ``weight`` + ``weight_scale``; every other module is a shallow copy whose parameters are new
  ``Parameter`` objects over the same storage (no copy in RAM, and moving one tree to a device never moves the
  other). The input tree is never modified. Layers already stored in FP8 are kept as they are, so applying twice
  equals applying once.
- ``first_last_layers(root)``: the first and the last weighted layer (Linear / ConvNd, in module-registration
  order) of each top-level part of a model (a VAE's ``encoder``, ``decoder``, and top-level quant convs):
  ``apply_fp8_storage(..., keep_first_last=True)`` keeps them in the original dtype. In a trained VAE they carry
  most of the FP8 error for ~1% of the weights: the image-facing convolutions see inputs with a large mean
  (pixels in [0, 1], post-ReLU activations) that their filters cancel, so the filters' rounding error does not
  cancel, and the latent-facing ones have nothing after them to absorb it (measured on TAESD for Flux.2: the
  encoder's first and last convs alone carry ~56% of the encode error).
- ``rebuild_tree``: that copy-on-write tree walk on its own, for other layer replacements (``quant.int8_convert``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.reference import FP8_DTYPE, FP8_MAX, amax_to_scale, cast_fp8
from .ignore import IgnoreMatcher

GRANULARITIES = ("channel", "tensor")
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Per-module state ComfyUI's ModelPatcher writes at load time: it belongs to the patcher of the source tree.
_RUNTIME_ATTRS = ("comfy_patched_weights", "prev_comfy_cast_weights", "comfy_force_cast_weights", "_v", "_prefetch",
                  "weight_lowvram_function", "bias_lowvram_function")
_ROOT_RUNTIME_ATTRS = ("model_loaded_weight_memory", "lowvram_patch_counter", "model_lowvram",
                       "current_weight_patches_uuid", "model_offload_buffer_memory")

__all__ = ["GRANULARITIES", "FP8StorageMixin", "StorageReport", "apply_fp8_storage", "dequantize_weight",
           "first_last_layers", "is_fp8_stored", "quantize_weight", "rebuild_tree", "stored_class"]


def quantize_weight(weight: torch.Tensor, granularity: str = "channel") -> tuple[torch.Tensor, torch.Tensor]:
    """FP8 e4m3 codes and float32 dequant scale (``W ≈ codes.float() * scale``)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}: expected one of {GRANULARITIES}")
    w = weight.detach()
    if granularity == "tensor" or w.dim() < 2:
        scale = amax_to_scale(w.abs().amax(), FP8_MAX).reshape(())
    else:
        scale = amax_to_scale(w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True), FP8_MAX)
    return cast_fp8(w, scale), scale


def dequantize_weight(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``codes * scale`` computed in float32, returned in ``dtype``."""
    return (codes.to(torch.float32) * scale.to(device=codes.device, dtype=torch.float32)).to(dtype)


def is_fp8_stored(module: nn.Module) -> bool:
    return isinstance(module, FP8StorageMixin)


def apply_patch_hooks(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ComfyUI's per-call patch hooks (``*_lowvram_function`` then ``*_function``: LoRA in low-VRAM mode)
    on a high-precision copy of a layer's weight and bias. Plain attributes, so no ComfyUI import is needed."""
    out = {"weight": weight, "bias": bias}
    for name, t in out.items():
        if t is None:
            continue
        lowvram = getattr(module, f"{name}_lowvram_function", None)
        if lowvram is not None:
            t = lowvram(t)
        for f in getattr(module, f"{name}_function", ()):
            t = f(t)
        out[name] = t
    return out["weight"], out["bias"]

class FP8StorageMixin:
    """Mixed in front of a Linear / ConvNd class (see ``stored_class``). ``weight`` holds FP8 codes,
    ``weight_scale`` their float32 scale; forward dequantizes into the input's dtype on the input's device.

    ComfyUI integration: ``comfy_cast_weights`` is pinned to True, so ComfyUI's ops always route through
    ``forward_comfy_cast_weights`` (replaced here: dequantize, then the patcher's ``weight_function`` /
    ``bias_function`` on the dequantized weight — low-VRAM LoRA). ``convert_weight`` / ``set_weight`` follow the
    ModelPatcher LoRA contract (dequantize → patch → requantize with fresh scales); when the patcher restores
    its backup of ``weight`` the scale the layer was built with comes back with it. Device moves keep FP8.
    """

    fp8_orig_dtype: torch.dtype
    fp8_granularity: str

    @property
    def comfy_cast_weights(self) -> bool:
        return True

    @comfy_cast_weights.setter
    def comfy_cast_weights(self, value: bool) -> None:  # ModelPatcher toggles it for low-VRAM loads: stay on
        pass

    def _fp8_setup(self, codes: torch.Tensor, scale: torch.Tensor, orig_dtype: torch.dtype, granularity: str) -> None:
        self._parameters["weight"] = nn.Parameter(codes, requires_grad=False)
        self._buffers["weight_scale"] = scale
        self._buffers["fp8_loaded_scale"] = scale
        self._non_persistent_buffers_set.discard("weight_scale")
        self._non_persistent_buffers_set.add("fp8_loaded_scale")
        self.__dict__["fp8_orig_dtype"] = orig_dtype
        self.__dict__["fp8_granularity"] = granularity
        # ComfyUI's archived dtypes (model_management.archive_model_dtypes), read by its loaders.
        self.__dict__["weight_comfy_model_dtype"] = FP8_DTYPE
        self.__dict__["weight_scale_comfy_model_dtype"] = torch.float32

    def __setattr__(self, name: str, value) -> None:
        # ModelPatcher restoring its backup of the codes (set_attr_param): the loaded scale comes back too.
        if (name == "weight" and "fp8_orig_dtype" in self.__dict__ and isinstance(value, torch.Tensor)
                and value.dtype == FP8_DTYPE):
            self._buffers["weight_scale"] = self._buffers["fp8_loaded_scale"]
        super().__setattr__(name, value)

    # --- tensors ----------------------------------------------------------------------------------------

    def fp8_dequantized_weight(self, dtype: torch.dtype | None = None, device: torch.device | None = None
                               ) -> torch.Tensor:
        w = self.weight if device is None else self.weight.to(device, non_blocking=True)
        dtype = dtype or self.fp8_orig_dtype
        if w.dtype != FP8_DTYPE:  # something replaced the codes with a float weight: use it as it is
            return w.to(dtype)
        return dequantize_weight(w, self.weight_scale.to(w.device, non_blocking=True), dtype)

    def _fp8_weight_bias(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = input.dtype if input.is_floating_point() else self.fp8_orig_dtype
        w = self.fp8_dequantized_weight(dtype, input.device)
        b = None if self.bias is None else self.bias.to(device=input.device, dtype=dtype, non_blocking=True)
        return apply_patch_hooks(self, w, b)

    def forward_comfy_cast_weights(self, input: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        w, b = self._fp8_weight_bias(input)
        if isinstance(self, nn.Linear):
            return F.linear(input, w, b)
        return self._conv_forward(input, w, b, *args, **kwargs)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias, *args, **kwargs) -> torch.Tensor:
        if weight.dtype == FP8_DTYPE:  # reached through a plain ConvNd.forward: dequantize here
            weight, bias = self._fp8_weight_bias(input)
        return super()._conv_forward(input, weight, bias, *args, **kwargs)

    def _apply(self, fn, recurse: bool = True):
        """Device moves apply to codes and scales; dtype casts (``.half()``, ``.to(bf16)``) leave them alone."""
        keep = {id(self._parameters.get("weight")), id(self._buffers.get("weight_scale")),
                id(self._buffers.get("fp8_loaded_scale"))}

        def move_only(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            return out if id(t) not in keep or out.dtype == t.dtype else t.to(device=out.device)

        return super()._apply(move_only, recurse)

    # --- LoRA (ComfyUI ModelPatcher.patch_weight_to_device) ---------------------------------------------

    def convert_weight(self, weight: torch.Tensor, inplace: bool = False, **kwargs) -> torch.Tensor:
        """The codes, already cast to the LoRA dtype by the patcher, dequantized to float32."""
        return dequantize_weight(weight, self.weight_scale.to(weight.device), torch.float32)

    def set_weight(self, weight: torch.Tensor, inplace_update: bool = False, seed: int | None = None,
                   return_weight: bool = False, **kwargs):
        """Store a patched float weight: in place / returned under the current scale, otherwise with a fresh one."""
        if return_weight or inplace_update:
            codes = cast_fp8(weight, self.weight_scale.to(weight.device))
            if return_weight:
                return codes
            self.weight.data.copy_(codes.to(self.weight.device))
            return None
        codes, scale = quantize_weight(weight, self.fp8_granularity)
        self._parameters["weight"] = nn.Parameter(codes, requires_grad=False)
        self._buffers["weight_scale"] = scale
        return None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fp8_storage={self.fp8_granularity}, compute={self.fp8_orig_dtype}"


_CLASSES: dict[type, type] = {}


def stored_class(cls: type[nn.Module]) -> type[nn.Module]:
    """``FP8Stored<cls>``: the FP8 mixin in front of ``cls`` (cached)."""
    if issubclass(cls, FP8StorageMixin):
        return cls
    if cls not in _CLASSES:
        ns: dict = {"__module__": __name__, "__qualname__": f"FP8Stored{cls.__name__}"}
        if not hasattr(cls, "forward_comfy_cast_weights"):  # a plain torch layer: forward is F.linear / conv
            ns["forward"] = lambda self, input, *a, **kw: self.forward_comfy_cast_weights(input, *a, **kw)
        _CLASSES[cls] = type(f"FP8Stored{cls.__name__}", (FP8StorageMixin, cls), ns)
    return _CLASSES[cls]


def _skip_reason(module: nn.Module) -> str | None:
    """Why a Linear / ConvNd cannot be stored in FP8 (None: it can)."""
    cls = type(module)
    if not (hasattr(module, "forward_comfy_cast_weights") or cls in LAYER_TYPES):
        return f"custom layer class {cls.__name__}"
    w = module._parameters.get("weight")
    if w is None or getattr(w, "is_meta", False):
        return "no weight"
    if type(w) not in (torch.Tensor, nn.Parameter):
        return f"weight is a {type(w).__name__}"  # e.g. ComfyUI's QuantizedTensor: already quantized
    if not w.dtype.is_floating_point or w.element_size() < 2:
        return f"weight is already {str(w.dtype).removeprefix('torch.')}"
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.transposed:
        return "transposed convolution"
    return None


def _is_weighted(m: nn.Module | None) -> bool:
    """A Linear or a convolution of any kind (transposed included: it is a layer of the forward path too)."""
    return isinstance(m, nn.Linear | nn.modules.conv._ConvNd)


def first_last_layers(root: nn.Module) -> dict[str, str]:
    """``{layer name: reason}``: the first and the last weighted layer (Linear / ConvNd) of each top-level part.

    Parts are the direct children of ``root`` holding a weighted layer (a VAE's ``encoder`` / ``decoder``,
    TAESD's ``taesd_encoder`` / ``taesd_decoder``, Wan VAE's ``conv1`` / ``conv2`` quant convs), after descending
    through wrappers with a single such child; a ``root`` that is itself a layer is its own part. Within a part,
    layers are ordered as the modules are registered (``named_modules``), which for VAEs is their forward order
    (checked on ComfyUI's TAESD, Wan 2.1 / 2.2 and KL VAEs by the integration tests); a part with one layer gives
    it once. Names are relative to ``root`` (a module reachable twice has its first name), reasons read
    "first layer of encoder", "last layer of encoder" or "only layer of conv1".
    """
    names: dict[int, str] = {}
    for name, m in root.named_modules():
        if _is_weighted(m):
            names.setdefault(id(m), name)
    if not names:
        return {}
    container, prefix = root, ""
    parts: list[tuple[str, nn.Module]] = []
    while not _is_weighted(container):
        parts = [(prefix + n, c) for n, c in container.named_children()
                 if any(_is_weighted(m) for m in c.modules())]
        if len(parts) != 1 or _is_weighted(parts[0][1]):
            break
        prefix, container = parts[0][0] + ".", parts[0][1]
    else:
        parts = [(prefix.removesuffix("."), container)]
    out: dict[str, str] = {}
    for part_name, part in parts:
        layers = list(dict.fromkeys(names[id(m)] for m in part.modules() if _is_weighted(m)))
        label = part_name or "the model"
        if len(layers) == 1:
            out.setdefault(layers[0], f"only layer of {label}")
        else:
            out.setdefault(layers[0], f"first layer of {label}")
            out.setdefault(layers[-1], f"last layer of {label}")
    return out


@dataclass
class StorageReport:
    granularity: str
    stored: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (layer, pattern)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (layer, reason)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (layer, reason): keep_first_last
    keep_first_last: bool = False
    kept_bytes: int = 0  # weights of the ``kept`` layers, as they are
    unused_patterns: list[str] = field(default_factory=list)
    bytes_before: int = 0  # of the layers converted here
    bytes_after: int = 0
    model_bytes_before: int = 0  # the whole tree (state_dict tensors)
    model_bytes_after: int = 0

    @property
    def bytes_saved(self) -> int:
        return self.model_bytes_before - self.model_bytes_after

    def summary(self, what: str = "model") -> str:
        mb = 1024 * 1024
        lines = [f"FP8 weight storage ({'per-output-channel' if self.granularity == 'channel' else 'per-tensor'}"
                 f" scales), compute in the original dtype",
                 f"layers stored in FP8: {len(self.stored)}" + (f" (+{len(self.already)} already FP8)"
                                                              if self.already else ""),
                 f"kept: {len(self.ignored)} by ignore list, "
                 + (f"{len(self.kept)} first/last layers ({self.kept_bytes / mb:.2f} MB), "
                    if self.keep_first_last else "")
                 + f"{len(self.skipped)} not eligible",
                 f"{what} weights: {self.model_bytes_before / mb:.2f} MB -> {self.model_bytes_after / mb:.2f} MB "
                 f"(saved {self.bytes_saved / mb:.2f} MB)"]
        reasons: dict[str, int] = {}
        for _, why in self.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        lines += [f"  not eligible: {why} x{n}" for why, n in sorted(reasons.items())]
        lines += [f"  kept, {why}: {name}" for name, why in self.kept]
        if self.unused_patterns:
            lines.append(f"ignore patterns matching no layer: {', '.join(self.unused_patterns)}")
        return "\n".join(lines)


def _tree_bytes(root: nn.Module) -> int:
    return sum(t.nbytes for t in root.state_dict().values() if isinstance(t, torch.Tensor))


def _shallow_copy(m: nn.Module) -> nn.Module:
    new = copy.copy(m)
    for k, v in list(new.__dict__.items()):
        if isinstance(v, dict | list | set):
            new.__dict__[k] = copy.copy(v)
    for k in _RUNTIME_ATTRS:
        new.__dict__.pop(k, None)
    for k in ("weight_function", "bias_function"):
        if k in new.__dict__:
            new.__dict__[k] = []
    return new


def rebuild_tree(root: nn.Module, convert: Callable[[str, nn.Module], bool],
                 build: Callable[[str, nn.Module, nn.Module, torch.Tensor], nn.Module],
                 device: torch.device | str | None = None,
                 source: Callable[[str, torch.Tensor], torch.Tensor] | None = None
                 ) -> tuple[nn.Module, dict[int, nn.Module]]:
    """A new module tree over the same tensors; ``root`` is left untouched.

    Every module is a shallow copy (ComfyUI's per-module load state dropped) whose parameters are new
    ``Parameter`` objects over the same storage (moved to ``device`` if given; ``source(key, tensor)`` picks the
    tensor for a state-dict key, e.g. a patcher's unpatched backup). For each module with ``convert(name, m)``
    true, ``build(name, old, copy, weight)`` returns its replacement: ``copy`` has every tensor but ``weight``,
    which is passed in. Modules reachable twice stay one module. Returns (new root, {id(old): new}).
    """
    modules: dict[int, nn.Module] = {}
    params: dict[int, nn.Parameter] = {}

    def src(key: str, t: torch.Tensor) -> torch.Tensor:
        t = source(key, t) if source is not None else t
        t = t.detach()
        return t if device is None else t.to(device)

    def walk(m: nn.Module, name: str) -> nn.Module:
        if id(m) in modules:
            return modules[id(m)]
        prefix = f"{name}." if name else ""
        new = _shallow_copy(m)
        modules[id(m)] = new
        rebuild = convert(name, m)
        for pname, p in m._parameters.items():
            if p is None or (rebuild and pname == "weight"):
                continue
            if id(p) not in params:
                params[id(p)] = nn.Parameter(src(prefix + pname, p), requires_grad=p.requires_grad)
            new._parameters[pname] = params[id(p)]
        for bname, b in m._buffers.items():
            if b is not None:
                new._buffers[bname] = src(prefix + bname, b)
        for cname, child in m._modules.items():
            new._modules[cname] = None if child is None else walk(child, prefix + cname)
        if rebuild:
            new = modules[id(m)] = build(name, m, new, src(prefix + "weight", m._parameters["weight"]))
        return new

    new_root = walk(root, "")
    for k in _ROOT_RUNTIME_ATTRS:
        new_root.__dict__.pop(k, None)
    return new_root, modules


def apply_fp8_storage(root: nn.Module, granularity: str = "channel", ignore: str | IgnoreMatcher | None = None,
                      device: torch.device | str | None = None,
                      source: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
                      keep_first_last: bool = False
                      ) -> tuple[nn.Module, StorageReport, dict[int, nn.Module]]:
    """A new tree with FP8-stored Linear / Conv weights; ``root`` is left untouched.

    ``ignore``: layers kept as they are (``quant.ignore`` syntax, names relative to ``root``).
    ``keep_first_last``: also keep the first and last layer of each top-level part (``first_last_layers``);
    a layer the ignore list names is reported as ignored, one already in FP8 stays as it is.
    ``device``: where the new tree's tensors live (default: where they are). ``source(key, tensor)`` gives the
    tensor to use for state-dict key ``key`` (e.g. a patcher's unpatched backup); default: the live tensor.
    Returns (new root, report, {id(old module): new module}).
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r}: expected one of {GRANULARITIES}")
    matcher = ignore if isinstance(ignore, IgnoreMatcher) else IgnoreMatcher(ignore)
    report = StorageReport(granularity, keep_first_last=keep_first_last)
    report.model_bytes_before = _tree_bytes(root)
    layer_names: list[str] = []
    first_last = first_last_layers(root) if keep_first_last else {}

    def convert(name: str, m: nn.Module) -> bool:
        if not isinstance(m, LAYER_TYPES):
            return False
        layer_names.append(name)
        if is_fp8_stored(m):
            report.already.append(name)
        elif (pattern := matcher.match(name)) is not None:
            report.ignored.append((name, pattern))
        elif (why := _skip_reason(m)) is not None:
            report.skipped.append((name, why))
        elif name in first_last:
            report.kept.append((name, first_last[name]))
            report.kept_bytes += m.weight.nbytes
        else:
            return True
        return False

    def build(name: str, old: nn.Module, new: nn.Module, w: torch.Tensor) -> nn.Module:
        codes, scale = quantize_weight(w, granularity)
        new.__class__ = stored_class(type(old))
        new._fp8_setup(codes, scale, w.dtype, granularity)
        report.stored.append((name, tuple(w.shape)))
        report.bytes_before += w.nbytes
        report.bytes_after += codes.nbytes + scale.nbytes
        return new

    new_root, modules = rebuild_tree(root, convert, build, device, source)
    report.unused_patterns = matcher.unused(layer_names)
    report.model_bytes_after = _tree_bytes(new_root)
    return new_root, report, modules
