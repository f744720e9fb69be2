"""Command-line interface: ``python -m comfyui_dit_quant {quantize,inspect,demo}``."""
