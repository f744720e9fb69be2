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
The copy-on-write tree walk is ``quant.module_tree.rebuild_tree`` (also used by ``quant.int8_convert``).
"""

from __future__ import annotations

from .apply import LAYER_TYPES, apply_fp8_storage
from .first_last import first_last_layers
from .fp8_weight import GRANULARITIES, dequantize_weight, quantize_weight
from .layer import FP8StorageMixin, is_fp8_stored, stored_class

__all__ = ["GRANULARITIES", "LAYER_TYPES", "FP8StorageMixin", "apply_fp8_storage",
           "dequantize_weight", "first_last_layers", "is_fp8_stored", "quantize_weight", "stored_class"]
