"""ComfyUI nodes of the pack.

Only the modules that say so import ComfyUI (``ops``, ``load_dit``, ``save_dit``, ``extension``); the helpers
(``layer_state``, ``load_plan``, ``scheme_choice``) are plain PyTorch and are unit-tested without ComfyUI.
"""
