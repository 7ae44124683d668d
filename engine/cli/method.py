"""`pfs models | flops | learn | search | prune | compare`: the method's commands."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from engine.cli.common import (
    MODEL_HELP,
    add_budget_args,
    add_learn_args,
    arch_args,
    graceful_stop,
    human,
    input_note_printer,
    is_main_process,
    learn_config,
    learn_data_options,
    learned_gates_line,
    number,
    out_dir,
    positive_int,
    print_json,
    progress,
    quoted,
    warn_if_unconverged,
)
from engine.errors import PfsError, PfsWarning, StopRequested, plural

# -- models -----------------------------------------------------------------------------


def _add_models_parser(sub) -> None:
    p = sub.add_parser("models", help="list the sample models with their dense MACs and params")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_models)


def _cmd_models(args) -> int:
    import torch

    from engine.flops import count_macs, count_params
    from engine.gating import create_model, model_entry
    from sample_models import list_models

    rows = []
    for name in list_models():
        entry = model_entry(name)
        imagenet = entry.cls.default_input_size[1] > 64
        with torch.device("meta"):
            m = create_model(name, num_classes=1000 if imagenet else 10)
        rows.append({"name": name, "description": entry.description,
                     "input_size": list(m.default_input_size), "num_classes": m.num_classes,
                     "groups": len(m.widths), "channels": sum(m.widths.values()),
                     "macs": count_macs(m), "params": count_params(m)})
    if args.json:
        print_json(rows)
        return 0
    width = max(len("model"), *(len(r["name"]) for r in rows)) + 2  # columns never run together
    print(f"{'model':<{width}}{'input':<12}{'MACs':>10}{'params':>10}{'groups':>8}  description")
    for r in rows:
        size = "x".join(map(str, r["input_size"]))
        print(f"{r['name']:<{width}}{size:<12}{human(r['macs']):>10}{human(r['params']):>10}{r['groups']:>8}  "
              f"{r['description']}")
    return 0


def _add_flops_parser(sub) -> None:
    p = sub.add_parser("flops", help="MACs and params of a model, dense or at a structure's widths")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--prune-residual", action="store_true",
                   help="foreign models: count residual-tied groups as gated (one gate each)")
    p.add_argument("--widths", metavar="JSON", help="count at the widths of a structure.json")
    p.add_argument("--dataset", metavar="NAME",
                   help="take input size and classes from a data set (e.g. fashion-mnist)")
    p.add_argument("--input-size", metavar="C,H,W", help="input size, e.g. 3,32,32 (default: the model's)")
    p.add_argument("--num-classes", type=positive_int, metavar="N",
                   help="classifier outputs (default 10, ImageNet 1000)")
    p.add_argument("--shortcut", choices=["A", "B"], help="CIFAR ResNet shortcut: B projection (default, the official "
                   "code's) or A zero-pad")
    p.add_argument("--expand", type=number, default=1.0, metavar="F", help="channel expansion factor (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_flops)


def _cmd_flops(args) -> int:
    from engine.gating import is_foreign

    result = (_foreign_flops if is_foreign(args.model) else _sample_flops)(args)
    if args.json:
        print_json(result)
        return 0
    size, macs, params, dense, dparams = (result[k] for k in ("input_size", "macs", "params", "dense_macs",
                                                              "dense_params"))
    print(f"{args.model} at {'x'.join(map(str, size))}, {result['num_classes']} classes")
    print(f"MACs   {macs:>15,}  ({human(macs)}, {macs / dense:.1%} of dense {human(dense)})")
    print(f"params {params:>15,}  ({human(params)}, {params / dparams:.1%} of dense {human(dparams)})")
    if "groups" in result:
        groups = result["groups"]
        print(f"gated: {plural(len(groups['gated']), 'group')}, "
              f"{plural(sum(g['channels'] for g in groups['gated']), 'channel')}")
        for g in groups["not_gated"]:
            print(f"not gated: {g['name']} ({plural(g['channels'], 'channel')}): {g['why']}")
    return 0


def _sample_flops(args) -> dict:
    import torch

    from engine.gating import create_model, model_entry

    entry = model_entry(args.model)
    size, classes = list(entry.cls.default_input_size), 1000 if entry.cls.default_input_size[1] > 64 else 10
    structure, size, classes = _with_structure(args, *_size_and_classes(args, size, classes))
    arch = {"shortcut": args.shortcut} if args.shortcut else {}
    if structure is not None:
        arch = {**structure.spec.get("arch", {}), **arch}
    with torch.device("meta"):
        m = create_model(args.model, num_classes=classes, in_channels=size[0],
                         widths=structure.widths if structure else None, expand=args.expand, **arch)
    return _counts(args.model, m, size, classes, None)


def _foreign_flops(args) -> dict:
    """`pfs flops torchvision:NAME ...`: MACs, params and the channel groups the graph finds."""
    from engine.gating import build_model
    from engine.models.spec import default_input_size, parse_spec

    if args.expand != 1.0:
        raise PfsError(f"--expand widens sample models only; {args.model} cannot be widened (use --expand 1)")
    size, classes = _size_and_classes(args, list(default_input_size(parse_spec(args.model), 3)), 1000)
    structure, size, classes = _with_structure(args, size, classes)
    m = build_model(args.model, num_classes=classes, in_channels=size[0], input_size=size,
                    prune_residual=args.prune_residual)
    return {**_counts(args.model, m, size, classes, structure.widths if structure else None),
            "groups": m.graph_summary()}


def _counts(name: str, m, size: list[int], classes: int, widths) -> dict:
    from engine.flops import count_macs, count_params, dense_macs, dense_params

    macs, params = count_macs(m, size, widths), count_params(m, widths)
    dense, dparams = dense_macs(m, size), dense_params(m)
    return {"model": name, "input_size": size, "num_classes": classes, "macs": macs, "params": params,
            "dense_macs": dense, "dense_params": dparams, "macs_ratio": macs / dense,
            "widths": dict(widths or m.widths)}


def _size_and_classes(args, size: list[int], classes: int) -> tuple[list[int], int]:
    """Input size and class count from --dataset / --input-size / --num-classes over defaults."""
    from engine.data import dataset_shape

    if args.dataset:
        shape, classes = dataset_shape(args.dataset)
        size = list(shape)
    if args.input_size:
        try:
            size = [int(v) for v in args.input_size.split(",")]
        except ValueError:
            raise PfsError(f"--input-size must be C,H,W like 3,32,32, got {args.input_size!r}") from None
        if len(size) != 3:
            raise PfsError(f"--input-size must be C,H,W like 3,32,32, got {args.input_size!r}")
    return size, args.num_classes or classes


def _with_structure(args, size: list[int], classes: int):
    """--widths: the structure, and its input size and classes unless the flags give them."""
    if not args.widths:
        return None, size, classes
    from engine.runs import load_structure

    structure = load_structure(args.widths)
    if structure.model != args.model:
        raise PfsError(f"{args.widths} is a structure of {structure.model}, not {args.model}")
    if not args.input_size and not args.dataset:
        size = structure.input_size
    return structure, size, args.num_classes or structure.num_classes


# -- learn / search / prune ---------------------------------------------------------------


def _add_learn_parser(sub) -> None:
    p = sub.add_parser("learn", help="learn channel gates on the frozen random network")
    add_learn_args(p)
    p.add_argument("--json", action="store_true", help="print the learning summary as JSON")
    p.set_defaults(func=_cmd_learn)


def _learn_from_args(args, budget: tuple[float, int] | None = None):
    from engine.events import fanout
    from engine.jobs import learn_run

    config = learn_config(args)
    out = out_dir(args)
    bar = progress(args)
    with graceful_stop() as should_stop:
        result = learn_run(out, model=args.model, dataset=args.dataset, learn=config, data_root=args.data_root,
                           download=args.download, expand=args.expand, arch=arch_args(args),
                           on_event=fanout(bar, input_note_printer, warn_if_unconverged),
                           should_stop=should_stop,
                           overwrite=args.overwrite, data_options=learn_data_options(args), budget=budget)
    if bar is not None:
        bar.close()
    return out, result


def _learn_summary(out: Path, result) -> dict:
    return {"run": str(out), "steps": result.steps, "stopped": result.stopped,
            "selected_step": result.selected_step, "heldout_acc": result.heldout_acc,
            "open_frac": result.open_frac, "mean_gate": result.mean_gate, "converged": result.converged,
            "warning": result.warning()}


def _cmd_learn(args) -> int:
    out, result = _learn_from_args(args)
    summary = _learn_summary(out, result)
    if not is_main_process():
        pass  # rank 0 reports
    elif args.json:
        print_json(summary)
    else:
        print(learned_gates_line(out, summary))
    if result.stopped:
        raise StopRequested(f"stopped at step {result.steps}, checkpoint saved; `pfs resume {quoted(out)}` "
                            "continues (the gates so far are kept in gates.pt)")
    if not args.json and is_main_process():
        print(f"next: pfs search {quoted(out)} --flops 0.5")
    return 0


def _add_search_parser(sub) -> None:
    p = sub.add_parser("search", help="find the structure within a FLOPs or latency budget from a run's gates")
    p.add_argument("run", help="run directory made by `pfs learn`")
    add_budget_args(p, latency=True)
    p.add_argument("--overwrite", action="store_true", help="replace the structure of a run that has been "
                   "trained, discarding that training")
    p.add_argument("--json", action="store_true", help="print structure.json")
    p.set_defaults(func=_cmd_search)


def _print_structure(structure, as_json: bool, run: Path) -> None:
    if as_json:
        print_json(structure.to_json())
        return
    print(f"{structure.model}: {structure.macs:,} MACs ({structure.macs_ratio:.1%} of dense, "
          f"{structure.speedup:.2f}x fewer), {structure.params:,} params "
          f"({structure.params / structure.dense_params:.1%})")
    print(f"threshold {structure.threshold:.4g}, {structure.tied} kept channels decided by a tie")
    print(f"{'group':<18}{'kept':>6}{'dense':>7}")
    for g, w in structure.widths.items():
        print(f"{g:<18}{w:>6}{structure.dense_widths[g]:>7}")
    print(f"wrote {run / 'structure.json'}", file=sys.stderr)


def _cmd_search(args) -> int:
    from engine.jobs import latency_search_run, search_run

    if args.latency_ms is None:
        timing = [f for f in ("device", "batch_size", "threads") if getattr(args, f) is not None]
        if timing:
            raise PfsError(f"--{timing[0].replace('_', '-')} sets how --latency-ms is measured; "
                           "add --latency-ms T or leave it out")
        structure = search_run(args.run, args.flops, min_channels=args.min_channels, overwrite=args.overwrite)
        _print_structure(structure, args.json, Path(args.run))
        return 0

    def probe(k, structure, ms) -> None:
        print(f"pfs: probe {k:>6} channels above the minimum: {structure.macs_ratio:.3f} of dense MACs, "
              f"{ms:.3f} ms", file=sys.stderr)

    result = latency_search_run(args.run, args.latency_ms, device=args.device or "cpu",
                                batch_size=args.batch_size or 1, threads=args.threads,
                                min_channels=args.min_channels, overwrite=args.overwrite, on_probe=probe)
    for caveat in result.caveats():
        warnings.warn(caveat, PfsWarning, stacklevel=2)
    if args.json:
        print_json({**result.structure.to_json(), "latency": result.record()})
        return 0
    _print_structure(result.structure, False, Path(args.run))
    print(f"latency budget {result.budget_ms:g} ms ({result.device}, batch {result.batch_size}, "
          f"{result.threads} threads): {result.search_ms:.3f} ms in the search, {result.measured_ms:.3f} ms "
          f"timed again (dense {result.dense_ms:.3f} ms); {result.probes} probes in {result.seconds:.1f} s")
    return 0


def _add_prune_parser(sub) -> None:
    p = sub.add_parser("prune", help="learn gates, then search the FLOPs budget (learn + search)")
    add_learn_args(p)
    add_budget_args(p)
    p.add_argument("--json", action="store_true", help="print structure.json")
    p.set_defaults(func=_cmd_prune)


def _cmd_prune(args) -> int:
    from engine.jobs import search_run

    if not 0 < args.flops <= 1:  # checked before learning so a typo costs no compute
        raise PfsError(f"--flops must be a fraction of the dense model's MACs in (0, 1], got {args.flops}")
    out, result = _learn_from_args(args, budget=(args.flops, args.min_channels))
    if result.stopped:
        raise StopRequested(f"stopped while learning gates at step {result.steps}, checkpoint saved; "
                            f"`pfs resume {quoted(out)}` continues, "
                            f"then `pfs search {quoted(out)} --flops {args.flops:g}`")
    if is_main_process():  # rank 0 owns the run; the others have done their share of the learning
        structure = search_run(out, args.flops, min_channels=args.min_channels)
        _print_structure(structure, args.json, out)
    return 0


# -- compare ------------------------------------------------------------------------------


def _add_compare_parser(sub) -> None:
    p = sub.add_parser("compare", help="how alike structures are: keep ratios per layer and their correlation")
    p.add_argument("structures", nargs="+", metavar="RUN", help="run directories or structure.json files")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_compare)


def _check_comparable(paths, structures) -> None:
    """Structures compare only within one model and one data set: a PfsError naming the odd one out."""
    from engine.runs import read_json

    def dataset(path) -> str | None:
        file = Path(path) / "structure.json" if Path(path).is_dir() else Path(path)
        data = read_json(file)
        return data.get("dataset") if isinstance(data, dict) else None

    first, first_data = structures[0], dataset(paths[0])
    for path, s in zip(paths[1:], structures[1:]):
        if s.model != first.model:
            raise PfsError(f"{path} is a {s.model} structure, {paths[0]} a {first.model} one; "
                           "compare structures of one model")
        data = dataset(path)
        if (data and first_data and data != first_data) or list(s.input_size) != list(first.input_size) \
                or s.num_classes != first.num_classes:
            raise PfsError(f"{path} was found on {data or s.input_size}, {paths[0]} on "
                           f"{first_data or first.input_size}; compare structures learned on one data set")


def _cmd_compare(args) -> int:
    from engine.analysis import keep_ratios, mean_pairwise_correlation, pairwise_correlations
    from engine.runs import load_structure

    structures = [load_structure(p) for p in args.structures]
    if len(structures) < 2:
        raise PfsError("give at least two runs or structure.json files to compare")
    _check_comparable(args.structures, structures)
    matrix = pairwise_correlations(structures)
    result = {"structures": args.structures,
              "keep_ratios": {p: keep_ratios(s).round(4).tolist() for p, s in zip(args.structures, structures)},
              "correlation": [[None if v != v else round(float(v), 4) for v in row] for row in matrix],
              "mean_correlation": _finite_or_none(mean_pairwise_correlation(structures))}
    if args.json:
        print_json(result)
        return 0
    groups = list(structures[0].dense_widths)
    print(f"{'group':<18}" + "".join(f"{i:>8}" for i in range(len(structures))))
    for k, g in enumerate(groups):
        print(f"{g:<18}" + "".join(f"{keep_ratios(s)[k]:>8.2f}" for s in structures))
    print("correlation of keep ratios:")
    for i, row in enumerate(matrix):
        print(f"{i:>3}" + "".join(f"{v:>8.2f}" if v == v else f"{'n/a':>8}" for v in row)
              + f"  {args.structures[i]}")
    mean = result["mean_correlation"]
    print("mean pairwise correlation " + (f"{mean:.3f}" if mean is not None else
                                          "n/a (a structure keeping every layer alike has no correlation)"))
    return 0


def _finite_or_none(value: float) -> float | None:
    """A correlation, or None where it is undefined (a constant keep-ratio vector): never NaN."""
    return value if value == value else None


PARSERS = (_add_models_parser, _add_flops_parser, _add_learn_parser, _add_search_parser,
           _add_prune_parser, _add_compare_parser)
