"""``python -m comfyui_dit_quant``: the command-line interface."""

from .cli.main import main

raise SystemExit(main())
