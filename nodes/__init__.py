"""ComfyUI nodes of the pack.

Only the modules that say so import ComfyUI (``ops``, ``load_dit``, ``save_dit``, ``extension``); the helpers
(``quant.load_plan``, ``quant.formats.layer_state``, ``quant.scheme_choice``) live in ``quant/`` and are
unit-tested without ComfyUI.
"""
