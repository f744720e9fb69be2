"""Under ComfyUI's Python: ComfyUI's own low-VRAM split (ModelPatcher partial load) over this pack's quantized
layers with a LoRA, on a tiny Wan model (CPU), against the same model fully loaded and stock bf16 + the LoRA.

argv: REPO_ROOT MODELS_DIR LORA_NAME BUDGET_FRACTION (free "VRAM" for weights, as a fraction of the model's size).
Per scheme: full load; low-VRAM split, queued again; more VRAM (partially_load loads the rest); less again
(partially_unload); unload; a fresh split; full again. Prints one JSON line last.

How the split is driven (``as_lowvram_gpu``). In a real ``--lowvram`` run on a GPU, ``vram_state`` is
``LOW_VRAM`` and KSampler → ``sampler_helpers.prepare_sampling`` → ``model_management.load_models_gpu`` computes
``lowvram_model_memory = max(free - minimum_memory_required, min(free * MIN_WEIGHT_MEMORY_RATIO,
free - minimum_inference_memory()))`` minus what the model already has loaded, from the device's free memory, and
calls ``LoadedModel.model_load`` → ``ModelPatcher.partially_load`` → ``ModelPatcher.load(device,
lowvram_model_memory, full_load=False)`` (or ``partially_unload`` when the budget shrank). ``load`` walks
``_load_list`` (largest offload cost first); a module that does not fit (with the offload buffer it reserves) gets
``comfy_cast_weights = True`` (old value kept in ``prev_comfy_cast_weights``) and its LoRA as ``weight_function =
[LowVramPatch]``, applied at every call; the others get the LoRA baked in (``patch_weight_to_device``) and move.

On a CPU-only machine ComfyUI never takes that branch: ``cpu_state == CPU`` forces ``vram_state = DISABLED``, and
``load_models_gpu`` also treats a CPU load device as ``DISABLED`` (``lowvram_model_memory = 0``: full load). So,
only while each ``load_models_gpu`` call runs, the CPU plays a GPU with ``budget`` bytes free for weights:
``vram_state = LOW_VRAM`` (what ``--lowvram`` sets), ``is_device_cpu`` → False (in there it picks the vram state
and a log figure; pinning stays off, ``MAX_PINNED_MEMORY = -1`` without CUDA, and the LoRA compute dtype stays
fp32 through ``cpu_mode()``) and ``get_free_memory`` → ``minimum_inference_memory() + budget - bytes loaded``, a
card of fixed size. With ``MIN_WEIGHT_MEMORY_RATIO = 0.4`` (any non-NVIDIA device) the formula then gives
``lowvram_model_memory == budget`` whatever the sampler's memory estimate. The rest (which modules go low-VRAM,
LowVramPatch, baking, unloading) is ComfyUI's unmodified code, and sampling runs with the real CPU settings. This
is the classic ModelPatcher path, the one ``--lowvram`` takes wherever dynamic VRAM is off (non-NVIDIA, WSL,
torch < 2.8, ``--disable-dynamic-vram``); ``ModelPatcherDynamic`` hands CPU load devices to this class anyway.
"""

import contextlib
import json
import sys

from comfy_boot import boot, cos, wan_sample

boot(sys.argv[1])

import comfy.model_management as mm
import folder_paths
import torch
from comfy.model_patcher import LowVramPatch

import nodes

repo, models_dir, lora_name, fraction = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT
from comfyui_dit_quant.nodes.ops import QuantLinearOp

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
folder_paths.add_model_folder_path("loras", models_dir, is_default=True)
SCHEMES = ("fp8 per-tensor", "fp8 block", "fp8 weight-only (per-channel)", "int8 W8A8")
STRENGTH = 3.0


def load(scheme: str):
    res = LoadFP8DiT.execute(unet_name="tiny_wan_bf16.safetensors", scheme=scheme, block_size="64x64",
                             preset="family default", ignored_layers="", compute_dtype="auto", backend="auto")
    return res.args[0]


def with_lora(model):
    return nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora_name, STRENGTH)[0]


@contextlib.contextmanager
def as_lowvram_gpu(budget: int):
    """Make every ``load_models_gpu`` inside treat the CPU as a ``--lowvram`` GPU with ``budget`` bytes free for
    weights (see the module docstring); yields the ``lowvram_model_memory`` values ComfyUI chose."""
    chosen: list[float] = []
    real_load, real_model_load = mm.load_models_gpu, mm.LoadedModel.model_load

    def model_load(self, lowvram_model_memory=0, force_patch_weights=False):
        chosen.append(lowvram_model_memory)
        return real_model_load(self, lowvram_model_memory, force_patch_weights)

    def load_models_gpu(models, *args, **kwargs):
        # weights stay on a card while load_models_gpu re-registers their model, so count every model's
        # loaded bytes, not only the registered ones
        patchers = {id(p.model): p for p in [*models, *(lm.model for lm in mm.current_loaded_models)]
                    if p is not None}

        def free_vram(dev=None, torch_free_too=False):
            free = mm.minimum_inference_memory() + budget - sum(p.loaded_size() for p in patchers.values())
            return (free, free) if torch_free_too else free

        saved = mm.vram_state, mm.is_device_cpu, mm.get_free_memory
        mm.vram_state, mm.is_device_cpu, mm.get_free_memory = mm.VRAMState.LOW_VRAM, lambda dev: False, free_vram
        try:
            return real_load(models, *args, **kwargs)
        finally:
            mm.vram_state, mm.is_device_cpu, mm.get_free_memory = saved

    mm.load_models_gpu, mm.LoadedModel.model_load = load_models_gpu, model_load
    try:
        yield chosen
    finally:
        mm.load_models_gpu, mm.LoadedModel.model_load = real_load, real_model_load


def quant_modules(patcher) -> dict:
    return {n: m for n, m in patcher.model.diffusion_model.named_modules()
            if isinstance(m, QuantLinearOp) and m.scheme is not None}


def split(patcher) -> dict:
    """How ComfyUI placed the quantized layers in the load that is live now."""
    q = quant_modules(patcher)
    lowvram = {n for n, m in q.items() if "prev_comfy_cast_weights" in vars(m)}
    return {
        "lowvram": len(lowvram),
        # the instance flag ModelPatcher.load set (the class attribute of manual_cast.Linear is True anyway)
        "lowvram_cast": sum(vars(q[n]).get("comfy_cast_weights") is True for n in lowvram),
        "lowvram_lora": sum(any(isinstance(f, LowVramPatch) for f in q[n].weight_function) for n in lowvram),
        "loaded": sum(bool(getattr(m, "comfy_patched_weights", False)) and n not in lowvram for n, m in q.items()),
        "baked_lora": sum(f"diffusion_model.{n}.weight" in patcher.backup for n in q),
        "model_lowvram": bool(patcher.model.model_lowvram),
    }


def snapshot(patcher) -> dict:
    dm = patcher.model.diffusion_model
    return {**{k: v.detach().clone() for k, v in dm.named_parameters()},
            **{f"buffer {k}": v.clone() for k, v in dm.named_buffers()}}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def clean(patcher) -> bool:
    """No low-VRAM state left on any module after unloading."""
    return not any("prev_comfy_cast_weights" in vars(m) or getattr(m, "weight_function", None)
                   or getattr(m, "comfy_patched_weights", False) for m in patcher.model.diffusion_model.modules())


mm.unload_all_models()
stock = nodes.UNETLoader().load_unet("tiny_wan_bf16.safetensors", "default")[0]
ref_base, ref = wan_sample(stock), wan_sample(with_lora(stock))
mm.unload_all_models()
del stock

result: dict = {}
for scheme in SCHEMES:
    model = load(scheme)
    before = snapshot(model)
    base = wan_sample(model)
    mm.unload_all_models()
    patched = with_lora(model)
    size = patched.model_size()
    budget = int(size * fraction)
    unloaded = []

    full = wan_sample(patched)  # (a) CPU: ComfyUI loads fully, the LoRA baked into every layer's codes
    full_split = split(patched)
    mm.unload_all_models()
    unloaded.append(same(snapshot(patched), before) and clean(patched))

    with as_lowvram_gpu(budget) as chosen:  # (b) ComfyUI's low-VRAM split
        low = wan_sample(patched)
        low_split = split(patched)
        low_again = wan_sample(patched)  # next queue, the model still partially loaded: the same split
    with as_lowvram_gpu(size * 4) as chosen_grow:  # more VRAM free: partially_load loads the rest
        grown = wan_sample(patched)
        grown_split = split(patched)
    with as_lowvram_gpu(budget) as chosen_shrink:  # less again: partially_unload restores backups, LowVramPatch
        shrunk = wan_sample(patched)
        shrunk_split = split(patched)
    mm.unload_all_models()
    unloaded.append(same(snapshot(patched), before) and clean(patched))
    with as_lowvram_gpu(budget):
        low_reloaded = wan_sample(patched)  # after unloading: a fresh partial load
    mm.unload_all_models()
    full_again = wan_sample(patched)
    mm.unload_all_models()
    unloaded.append(same(snapshot(patched), before) and clean(patched))

    result[scheme] = {
        "budget": budget, "model_size": size,
        "lowvram_model_memory": {"split": chosen, "grow": chosen_grow, "shrink": chosen_shrink},
        "full_split": full_split, "lowvram_split": low_split, "grown_split": grown_split,
        "shrunk_split": shrunk_split,
        "lowvram_vs_full": cos(low, full), "lowvram_vs_full_delta": cos(low - base, full - base),
        "shrunk_vs_full": cos(shrunk, full), "shrunk_vs_full_delta": cos(shrunk - base, full - base),
        "full_vs_bf16_lora": cos(full, ref), "lowvram_vs_bf16_lora": cos(low, ref),
        "shrunk_vs_bf16_lora": cos(shrunk, ref),
        "lora_changed": ((full - base).norm() / base.norm()).item(),
        "finite": all(bool(torch.isfinite(t).all()) for t in (full, low, shrunk)),
        "unloaded_identical": unloaded,
        "grown_identical_to_full": bool(torch.equal(grown, full)),
        "requeue_identical": [bool(torch.equal(low_again, low)), bool(torch.equal(low_reloaded, low)),
                              bool(torch.equal(full_again, full))],
        "base_unchanged": bool(torch.equal(wan_sample(model), base)),
    }
    mm.unload_all_models()
result["bf16 lora_changed"] = ((ref - ref_base).norm() / ref_base.norm()).item()
print(json.dumps(result))
