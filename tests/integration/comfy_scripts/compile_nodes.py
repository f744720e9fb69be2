"""Under ComfyUI's Python: Load FP8 DiT → ComfyUI's own TorchCompileModel node → KSampler on a tiny Wan model (CPU).

argv: REPO_ROOT MODELS_DIR CASE [LORA_NAME]. Cases:

``schemes``  per scheme: the compiled model (backend "inductor") vs the same model uncompiled, sampled twice;
             graph breaks (with their user frames), recompiles, frames compiled, and how many
             ``comfyui_dit_quant::quant_linear`` nodes the graph handed to inductor holds.
``lora``     LoraLoaderModelOnly after the compile node (and back to the unpatched model) and before it, vs the
             uncompiled model with the same LoRA: LoRA patches replace the quantized weights (``set_weight``), so
             a compiled graph that kept stale weights would show here.
``subquad``  ComfyUI's CPU default attention (sub-quadratic), whose ``get_free_memory`` (psutil reads
             /proc/meminfo) breaks the graph inside ComfyUI's attention: the breaks, and whether any is ours
             (backend "aot_eager": the breaks are the point here, not inductor's code).

``schemes`` and ``lora`` run with ``--use-pytorch-cross-attention``, ComfyUI's default on NVIDIA (where
TorchCompileModel is used), so the whole diffusion model can be one graph. Prints one JSON line last.
"""

import json
import logging
import os
import sys

from comfy_boot import boot, cos, wan_sample

repo, models_dir, case = sys.argv[1:4]
sys.path.insert(0, os.environ["COMFYUI_PATH"])
from comfy.cli_args import args

args.use_pytorch_cross_attention = case != "subquad"
boot(repo)

import folder_paths
import torch
import torch._inductor.compile_fx
from comfy_extras.nodes_torch_compile import TorchCompileModel
from torch._dynamo.utils import counters

import comfyui_dit_quant
import nodes
from comfyui_dit_quant.nodes.load_dit import LoadFP8DiT

folder_paths.add_model_folder_path("diffusion_models", models_dir, is_default=True)
folder_paths.add_model_folder_path("loras", models_dir, is_default=True)
SCHEMES = ("fp8 block", "fp8 per-token x channel", "fp8 weight-only (per-channel)", "int8 W8A8")
OP = torch.ops.comfyui_dit_quant.quant_linear
PACK_ROOTS = {os.path.realpath(os.path.dirname(comfyui_dit_quant.__file__)), os.path.realpath(repo)}


class DynamoLog(logging.Handler):
    """Collects dynamo's graph-break and recompile messages (each carries the user frames / guard that failed)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.breaks: list[str] = []
        self.recompiles: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.endswith("__graph_breaks"):
            self.breaks.append(record.getMessage())
        elif record.name.endswith("__recompiles"):
            self.recompiles.append(record.getMessage())


LOG = DynamoLog()
torch._logging.set_logs(graph_breaks=True, recompiles=True)
logging.getLogger("torch._dynamo").addHandler(LOG)

GRAPHS: list[int] = []  # quant_linear nodes in each FX graph dynamo hands to inductor
_compile_fx = torch._inductor.compile_fx.compile_fx


def spy_compile_fx(gm, example_inputs, *a, **kw):
    GRAPHS.append(sum(n.op == "call_function" and n.target in (OP, OP.default) for n in gm.graph.nodes))
    return _compile_fx(gm, example_inputs, *a, **kw)


torch._inductor.compile_fx.compile_fx = spy_compile_fx  # the "inductor" backend imports it at each compile
CALLS = [0]  # calls into a torch.compile'd module: proves a sampling ran through the compiled diffusion model
_optimized_call = torch._dynamo.eval_frame.OptimizedModule.__call__


def counting_call(self, *a, **kw):
    CALLS[0] += 1
    return _optimized_call(self, *a, **kw)


torch._dynamo.eval_frame.OptimizedModule.__call__ = counting_call


def ours(frame_path: str) -> bool:
    path = os.path.realpath(frame_path)
    return any(path.startswith(root + os.sep) and not path.startswith(os.path.join(root, "tests") + os.sep)
               for root in PACK_ROOTS)


def describe_break(msg: str) -> dict:
    """The reason, the innermost user frame and whether any frame on the way (or the reason) is this pack's."""
    lines = msg.splitlines()
    # "Graph break [(user stack suppressed due to duplicate graph break)] in user code at PATH:LINE", then the
    # reason and (the first time) the user frames, outermost first
    at = lines[0].rpartition(" in user code at ")[2] if lines and " in user code at " in lines[0] else ""
    paths = [ln.strip().split('"')[1] for ln in lines if ln.strip().startswith('File "')]
    paths += [at.rpartition(":")[0]] if at else []
    reason = next((ln.strip() for ln in lines if ln.strip().startswith("Explanation:")),
                  next((ln.strip() for ln in lines if "Graph Break Reason" in ln), lines[0] if lines else ""))
    return {"reason": reason[:300], "at": at, "ours": any(map(ours, paths)) or "quant_linear" in msg
            or "comfyui_dit_quant::" in msg}


def snapshot() -> dict:
    """Cumulative dynamo state since the last ``reset``."""
    return {"compiled_calls": CALLS[0], "frames": counters["frames"]["total"],
            "graphs": counters["stats"]["unique_graphs"],
            "graph_breaks": sum(counters["graph_break"].values()), "recompiles": len(LOG.recompiles)}


def reset() -> None:
    torch._dynamo.reset()
    counters.clear()
    LOG.breaks.clear()
    LOG.recompiles.clear()
    GRAPHS.clear()
    CALLS[0] = 0


def breaks_summary() -> list[dict]:
    seen: dict[tuple, dict] = {}
    for msg in LOG.breaks:
        d = describe_break(msg)
        seen.setdefault((d["reason"], d["at"]), {**d, "count": 0})["count"] += 1
    return list(seen.values())


def load(scheme: str):
    widgets = {"unet_name": "tiny_wan_bf16.safetensors", "scheme": scheme, "block_size": "64x64",
               "preset": "family default", "ignored_layers": "", "compute_dtype": "auto", "backend": "auto"}
    return LoadFP8DiT.execute(**widgets).args[0]


def compile_node(model, backend: str = "inductor"):
    """ComfyUI's TorchCompileModel as a workflow runs it (``execute`` with the widget value)."""
    return TorchCompileModel.execute(model, backend).args[0]


def lora(model, name: str):
    return nodes.LoraLoaderModelOnly().load_lora_model_only(model, name, 3.0)[0]


result: dict = {}
if case == "schemes":
    for label in SCHEMES:
        reset()
        model = load(label)
        eager = wan_sample(model)
        compiled = compile_node(model)
        first = wan_sample(compiled)  # compiles here, at sample time (the node only installs a wrapper)
        after_first = snapshot()
        second = wan_sample(compiled)
        after_second = snapshot()
        eager_again = wan_sample(model)  # the plain MODEL next to the compiled clone still runs eagerly
        result[label] = {"cosine": cos(first, eager), "finite": bool(torch.isfinite(first).all()),
                         "second_identical": bool(torch.equal(first, second)),
                         "eager_again_identical": bool(torch.equal(eager_again, eager)),
                         "after_first": after_first, "after_second": after_second,
                         "after_eager_again": snapshot(), "ops_per_graph": list(GRAPHS),
                         "breaks": breaks_summary(), "recompile_reasons": [r[:400] for r in LOG.recompiles],
                         "wrapped": "torch_compile_kwargs" in compiled.model_options}
elif case == "lora":
    name = sys.argv[4]
    for label in SCHEMES:
        reset()
        model = load(label)
        base = wan_sample(model)
        ref = wan_sample(lora(model, name))  # uncompiled + LoRA: the reference
        s_eager = snapshot()
        compiled = compile_node(model)
        c_base = wan_sample(compiled)
        s_base = snapshot()
        c_lora = wan_sample(lora(compiled, name))  # LoRA after the compile node
        s_lora = snapshot()
        c_back = wan_sample(compiled)  # unpatched again
        s_back = snapshot()
        before = wan_sample(compile_node(lora(model, name)))  # LoRA before the compile node
        result[label] = {
            "base_cosine": cos(c_base, base),
            "after_lora_cosine": cos(c_lora, ref), "after_delta_cosine": cos(c_lora - c_base, ref - base),
            "after_delta_norm_ratio": ((c_lora - c_base).norm() / (ref - base).norm()).item(),
            "before_lora_cosine": cos(before, ref), "before_delta_cosine": cos(before - c_base, ref - base),
            "lora_changed": ((ref - base).norm() / base.norm()).item(),
            "back_identical": bool(torch.equal(c_back, c_base)),
            "snapshots": {"eager": s_eager, "base": s_base, "lora_after": s_lora, "back": s_back,
                          "lora_before": snapshot()},
            "breaks": breaks_summary(), "recompile_reasons": [r[:400] for r in LOG.recompiles]}
elif case == "subquad":
    label = "fp8 block"
    reset()
    model = load(label)
    eager = wan_sample(model)
    compiled = compile_node(model, "aot_eager")
    first = wan_sample(compiled)
    after_first = snapshot()
    second = wan_sample(compiled)
    result[label] = {"cosine": cos(first, eager), "second_identical": bool(torch.equal(first, second)),
                     "after_first": after_first, "after_second": snapshot(), "breaks": breaks_summary(),
                     "recompile_reasons": [r[:400] for r in LOG.recompiles],
                     "graph_break_counter": {k.splitlines()[0][:200]: v for k, v in counters["graph_break"].items()}}
print(json.dumps(result))
