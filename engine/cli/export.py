"""`pfs export RUN --format onnx|safetensors|torchscript --out FILE`: a trained run's pruned
network for programs that do not import pfs."""
from __future__ import annotations

import sys

from engine.cli.common import print_json


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a trained run's pruned network as ONNX, safetensors or TorchScript")
    p.add_argument("run", help="run directory trained by `pfs train` or `pfs run`")
    p.add_argument("--format", required=True, choices=["onnx", "safetensors", "torchscript"],
                   help="onnx (checked against onnxruntime), safetensors (spec and kept channels in its metadata) "
                   "or torchscript")
    p.add_argument("--out", required=True, metavar="FILE", help="file to write (replaced atomically)")
    p.add_argument("--unfinished", action="store_true",
                   help="export a training that is not finished (its last checkpoint's weights)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from engine.runs.export import export

    out = export(args.run, args.format, args.out, unfinished=args.unfinished)
    if args.json:
        print_json({"run": args.run, "format": args.format, "out": str(out), "bytes": out.stat().st_size})
    else:
        print(f"wrote {out} ({args.format}, {out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


PARSERS = (_add_export_parser,)
