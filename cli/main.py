"""``python -m comfyui_dit_quant {quantize,inspect,calibrate,demo}``."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback

from ..quant.formats.atomic_write import Terminated
from ..quant.formats.safetensors_io import CheckpointError, OutputWriteError


def build_parser() -> argparse.ArgumentParser:
    from .quantize_cmd import SCHEME_CHOICES, SCHEME_HELP

    p = argparse.ArgumentParser(prog="python -m comfyui_dit_quant",
                                description="FP8 / INT8 quantization of diffusion transformers (Wan, Qwen-Image, "
                                            "HunyuanVideo 1.5) for ComfyUI.")
    p.add_argument("-v", "--verbose", action="store_true", help="log every decision")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quantize", help="quantize a bf16/fp16/fp32 safetensors checkpoint (streamed, atomic)")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("--scheme", required=True, choices=SCHEME_CHOICES, help=SCHEME_HELP)
    q.add_argument("--block-size", default=None, help="BNxBK for block schemes (default 128x128)")
    q.add_argument("--ignore", action="append", default=[],
                   help="layers kept in high precision: names, globs, re:REGEX or bare words (repeatable, "
                        "comma separated)")
    q.add_argument("--preset", default="default", choices=("default", "none", "quality"),
                   help="the family's ignore preset added to --ignore")
    q.add_argument("--family", default="auto", choices=("auto", "none"),
                   help="auto: detect the model family (unknown files are refused); none: no detection/preset")
    q.add_argument("--format", default="auto", choices=("auto", "comfy_quant", "dit_quant"),
                   help="auto: ComfyUI-native comfy_quant (stock ComfyUI runs it) for fp8_tensor and int8, else "
                        "this pack's dit_quant (stock ComfyUI refuses it, naming the format)")
    q.add_argument("--min-features", type=int, default=16, help="keep layers with a smaller dimension")

    i = sub.add_parser("inspect", help="describe a checkpoint: family, format, per-layer dtypes and scales")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.add_argument("--limit", type=int, default=40, help="layers listed")
    i.add_argument("--component", default="transformer", help="ModelOpt pipeline folder: which transformer")

    c = sub.add_parser("calibrate", help="ModelOpt FP8 calibration of a bf16 diffusers transformer folder "
                                         "(needs the 'modelopt' extra)")
    c.add_argument("input", help="diffusers transformer folder (config.json + safetensors)")
    c.add_argument("output", help="export folder (ModelOpt's export_hf_checkpoint)")
    c.add_argument("--algo", default="FP8", type=str.upper,
                   choices=("FP8", "FP8_PB_WO", "FP8_PER_CHANNEL_PER_TOKEN"))
    c.add_argument("--ignore", action="append", default=[], help="layers kept in bf16 (names, globs, re:)")
    c.add_argument("--preset", default="default", choices=("default", "none", "quality"),
                   help="the detected family's ignore preset, added to --ignore")
    c.add_argument("--inputs", default=None, help="torch.save'd list of forward kwargs dicts")
    c.add_argument("--samples", type=int, default=4, help="random calibration samples without --inputs")
    c.add_argument("--seed", type=int, default=0)

    d = sub.add_parser("demo", help="tiny real diffusers DiTs x every scheme: size, error and time vs bf16")
    d.add_argument("--models", default=None, help="comma-separated subset of: wan, qwen_image, hunyuan_video15")
    d.add_argument("--schemes", default=None, help="comma-separated subset of the schemes")
    d.add_argument("--json", default=None, help="also write the rows as JSON here")
    return p


def _target(args: argparse.Namespace) -> str | None:
    """The file a command works on, named in its error line."""
    return getattr(args, "input", None) or getattr(args, "file", None)


def error_line(e: BaseException, target: str | None) -> str:
    """One ``error: ...`` line naming the file."""
    if isinstance(e, OSError) and not isinstance(e, OutputWriteError) and e.filename is not None:
        text = f"{e.filename}: {e.strerror or e}"
    elif isinstance(e, (CheckpointError, ValueError, OSError)):
        text = str(e)
    else:
        text = f"unexpected {type(e).__name__}: {e} (run with -v for the traceback)"
    text = "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(e).__name__
    if target and target not in text and not isinstance(e, OutputWriteError):
        text = f"{target}: {text}"
    return f"error: {text}"


def _run(args: argparse.Namespace) -> int:
    if args.command == "quantize":
        from .quantize_cmd import quantize_command
        return quantize_command(args)
    if args.command == "inspect":
        from .inspect_cmd import inspect_command
        return inspect_command(args)
    if args.command == "calibrate":
        from .calibrate_cmd import calibrate_command
        return calibrate_command(args)
    from .demo import demo_command
    return demo_command(args)


def main(argv: list[str] | None = None) -> int:
    """Run a command; every failure is one ``error:`` line on stderr (exit 2), a signal 128 + its number."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    target = _target(args)
    try:
        return _run(args)
    except Terminated as e:
        print(f"error: {target or args.command}: terminated (SIGTERM); no output file left", file=sys.stderr)
        return int(e.code or 143)
    except KeyboardInterrupt:
        print(f"error: {target or args.command}: interrupted; no output file left", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI's last line of defence: one line, never a traceback
        if args.verbose:
            traceback.print_exc()
        print(error_line(e, target), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
