"""`pfs baseline | experiment | report`: the paper's evidence from the command line.

Registered by engine.cli.build_parser through PARSERS; thin over engine.evidence (baselines,
experiment grids, reports). Per-cell progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.cli.common import (
    DATASET_HELP,
    MODEL_HELP,
    graceful_stop,
    human,
    number,
    positive_int,
    print_json,
    progress,
)
from engine.errors import plural


def _add_learning_args(p) -> None:
    """Gate-learning flags of the arms that learn gates (pfs, pretrained-pfs, l1-gates)."""
    g = p.add_argument_group("gate learning (pfs, pretrained-pfs, l1-gates)")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, metavar="N",
                        help="gate-learning steps (default: `pfs learn`'s, 300 on fashion-mnist)")
    length.add_argument("--learn-epochs", type=number, metavar="E", help="gate-learning epochs (default 10 "
                        "elsewhere, the paper's)")
    g.add_argument("--sparsity", type=number, metavar="R", help="target mean gate r (default 0.2)")
    g.add_argument("--gamma", type=number, metavar="G", help="regulariser weight (default 0.5)")
    g.add_argument("--learn-lr", type=number, metavar="LR", help="Adam learning rate of the gates (default 0.01)")
    g.add_argument("--learn-batch-size", type=positive_int, metavar="N", help="gate-learning batch (default 128)")
    g.add_argument("--eval-every", type=positive_int, metavar="N", help="steps between held-out evaluations "
                   "(default: `pfs learn`'s)")
    g.add_argument("--heldout-limit", type=positive_int, metavar="N", help="held-out images per evaluation")


def _learn_settings(args) -> dict:
    names = {
        "steps": "steps",
        "learn_epochs": "epochs",
        "sparsity": "sparsity",
        "gamma": "gamma",
        "learn_lr": "lr",
        "learn_batch_size": "batch_size",
        "eval_every": "eval_every",
        "heldout_limit": "heldout_limit",
    }
    return {key: getattr(args, flag) for flag, key in names.items() if getattr(args, flag) is not None}


def _add_data_args(p, model: bool = True) -> None:
    if model:
        p.add_argument("model", help=MODEL_HELP)
        p.add_argument("--dataset", default="fashion-mnist", metavar="NAME", help=DATASET_HELP)
        p.add_argument("--data-root", metavar="DIR", help="folder holding the data set")
        p.add_argument("--expand", type=number, default=1.0, metavar="F", help="width of the dense network (default 1)")
        p.add_argument("--shortcut", choices=["A", "B"], help="CIFAR ResNet shortcut: B projection (default, the "
                       "official code's) or A zero-pad")
    learning = ("; gate learning sees the whole training split (cap its held-out evaluation with "
                "--heldout-limit)") if model else ""
    p.add_argument("--subset", type=positive_int, metavar="N", help=f"train (and pre-train) on the first N "
                   f"images{learning}")
    p.add_argument("--test-subset", type=positive_int, metavar="N", help="test on the first N images")
    p.add_argument("--quiet", action="store_true", help="no progress output")


# -- pfs baseline -----------------------------------------------------------------------
def _add_baseline_parser(sub) -> None:
    from engine.evidence import KINDS

    p = sub.add_parser(
        "baseline",
        help="a same-budget baseline structure as a run directory "
        "(uniform, random, slimming, pretrained-pfs, l1-gates)",
    )
    p.add_argument("kind", choices=KINDS, help="which baseline (pfs: the method itself, for symmetry)")
    _add_data_args(p)
    p.add_argument("--flops", type=number, required=True, metavar="F", help="budget, fraction of dense MACs")
    p.add_argument("--min-channels", type=positive_int, default=1, metavar="N", help="channels kept per group at least")
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the network, data order and pre-training (default 0)"
    )
    p.add_argument(
        "--pretrain-epochs",
        type=positive_int,
        default=10,
        metavar="E",
        help="epochs of dense pre-training (slimming, pretrained-pfs; default 10)",
    )
    p.add_argument(
        "--slim-lambda",
        type=number,
        default=1e-4,
        metavar="L",
        help="L1 penalty on BN scales while pre-training for slimming (default 1e-4, Liu et al.)",
    )
    _add_learning_args(p)
    p.add_argument("--out", metavar="RUN", required=True, help="run directory (rerun the command to resume it)")
    p.add_argument("--json", action="store_true", help="print summary.json")
    p.set_defaults(func=_cmd_baseline)


def baseline_spec(args):
    """The BaselineSpec of `pfs baseline`'s flags; gate learning left out is `pfs learn`'s default."""
    from engine.evidence import BaselineSpec
    from engine.learn import LearnConfig
    from engine.learn_schedule import resolve_schedule

    return BaselineSpec(
        kind=args.kind,
        model=args.model,
        dataset=args.dataset,
        flops=args.flops,
        seed=args.seed,
        pretrain_epochs=args.pretrain_epochs,
        slim_lambda=args.slim_lambda,
        learn=LearnConfig(**resolve_schedule(args.dataset, _learn_settings(args))),
        subset=args.subset,
        test_subset=args.test_subset,
        data_root=args.data_root,
        min_channels=args.min_channels,
        expand=args.expand,
        arch={"shortcut": args.shortcut} if args.shortcut else {},
    )


def _cmd_baseline(args) -> int:
    from engine.events import fanout
    from engine.evidence import make_baseline

    spec = baseline_spec(args)
    bar = progress(args)
    with graceful_stop() as should_stop:
        summary = make_baseline(args.out, spec, on_event=fanout(bar), should_stop=should_stop)
    if bar is not None:
        bar.close()
    warning = summary.get("learn", {}).get("warning")
    if warning:
        print(f"pfs: warning: {warning}", file=sys.stderr)
    if args.json:
        print_json(summary)
    else:
        print(
            f"{args.out}: {args.kind} structure, {human(summary['macs'])} MACs ({summary['macs_ratio']:.1%} of "
            f"dense), found in {summary['finding_seconds']:.1f} s"
        )
        print(f"next: pfs train {args.out}")
    return 0


# -- pfs experiment ---------------------------------------------------------------------
def _add_experiment_parser(sub) -> None:
    p = sub.add_parser("experiment", help="run (or resume) a grid of the paper's evidence into one directory")
    kinds = p.add_subparsers(
        dest="experiment",
        required=True,
        metavar="EXPERIMENT",
        parser_class=type(p),
        help="baselines | correlation | ticket",
    )
    b = kinds.add_parser("baselines", help="PFS and every baseline x seeds, trained alike")
    _add_data_args(b)
    b.add_argument("--flops", type=number, required=True, metavar="F", help="budget, fraction of dense MACs")
    b.add_argument("--arms", nargs="+", metavar="ARM", help="arms to run (default: all)")
    b.add_argument(
        "--pretrain-epochs", type=positive_int, default=10, metavar="E", help="pre-training epochs (default 10)"
    )
    c = kinds.add_parser("correlation", help="how alike structures are across seeds, by pre-training epochs")
    _add_data_args(c)
    c.add_argument("--flops", type=number, default=0.3, metavar="F", help="budget (default 0.3)")
    c.add_argument(
        "--pretrain-epochs",
        type=int,
        nargs="+",
        default=[0, 1, 5, 20],
        metavar="E",
        help="epoch counts to take structures at (0 = PFS at init; default 0 1 5 20)",
    )
    t = kinds.add_parser("ticket", help="one structure from scratch vs ticket init vs inherited weights")
    t.add_argument("run", help="a run with init.pt and structure.json (pfs learn + search, or pfs baseline pfs)")
    _add_data_args(t, model=False)
    t.add_argument(
        "--pretrained", metavar="CHECKPOINT", help="trained dense weights to inherit (default: pre-train here)"
    )
    t.add_argument(
        "--pretrain-epochs", type=positive_int, default=10, metavar="E", help="pre-training epochs (default 10)"
    )
    for q in (b, c, t):
        q.add_argument("--seeds", type=int, nargs="+", metavar="S", help="seeds (default 0 1 2; correlation 0 1 2 3 4)")
        q.add_argument("--out", metavar="EXP", required=True, help="experiment directory (rerun to resume)")
        q.add_argument("--json", action="store_true", help="print results.json")
    for q in (b, t):
        q.add_argument("--train-epochs", type=positive_int, required=True, metavar="N", help="training epochs per cell")
    for q in (b, c, t):
        q.add_argument(
            "--train-batch-size", type=positive_int, metavar="N", help="training and pre-training batch (default 128)"
        )
    for q in (b, c):
        q.add_argument("--slim-lambda", type=number, metavar="L", help="L1 on BN scales for slimming (default 1e-4)")
        q.add_argument("--min-channels", type=positive_int, metavar="N", help="channels kept per group at least")
        _add_learning_args(q)
    p.set_defaults(func=_cmd_experiment)


def _experiment_settings(args) -> dict:
    keys = (
        "model",
        "dataset",
        "data_root",
        "expand",
        "flops",
        "arms",
        "pretrain_epochs",
        "slim_lambda",
        "min_channels",
        "seeds",
        "train_epochs",
        "train_batch_size",
        "subset",
        "test_subset",
        "run",
        "pretrained",
    )
    settings = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if args.experiment != "ticket":
        settings["learn"] = _learn_settings(args)
        if args.shortcut:
            settings["arch"] = {"shortcut": args.shortcut}
    return settings


def _cmd_experiment(args) -> int:
    from engine.errors import StopRequested
    from engine.evidence import run_experiment

    def on_cell(name: str, result: dict) -> None:
        if not args.quiet:
            acc = f", test acc {result['test_acc']:.4f}" if result.get("test_acc") is not None else ""
            print(f"pfs: cell {name} done{acc}", file=sys.stderr, flush=True)
        learned = result.get("learn") or {}
        if learned and not learned.get("converged", True):  # the learn warning, short: one per cell
            print(f"pfs: warning: cell {name}: no evaluated step met r ({learned['open_frac']:.0%} of the gates "
                  f"open after {learned['steps']} steps), its last gates were kept (docs/learning.md)",
                  file=sys.stderr, flush=True)

    def on_start(text: str, number: int, total: int) -> None:
        if not args.quiet:
            print(f"pfs: {text}", file=sys.stderr, flush=True)

    with graceful_stop() as should_stop:
        try:
            results = run_experiment(args.experiment, args.out, _experiment_settings(args), should_stop=should_stop,
                                     on_cell=on_cell, on_start=on_start)
        except StopRequested:  # the cell's own hint (`pfs resume CELL`) would leave the grid behind
            raise StopRequested(f"stopped; repeat this `pfs experiment` command to continue {args.out} (finished "
                                "cells are kept, the one in progress resumes from its checkpoint)") from None
    if args.json:
        print_json(results)
    else:
        print(f"{args.out}: {plural(len(results['cells']), 'cell')} done; next: pfs report {args.out}")
    return 0


# -- pfs report -------------------------------------------------------------------------
def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help="Markdown tables, PNG figures and JSON from experiment directories")
    p.add_argument("experiments", nargs="+", metavar="EXP", help="experiment directories (pfs experiment --out)")
    p.add_argument("--out", metavar="DIR", help="folder for report.json and the figures (default EXP/report)")
    p.add_argument("--markdown", metavar="FILE", help="where the Markdown goes (default DIR/report.md)")
    p.add_argument("--notes", metavar="FILE", help="Markdown put under the title (schedule, reading)")
    p.add_argument("--title", default="pfs report", help="the Markdown's title")
    p.add_argument("--partial", action="store_true", help="report an unfinished experiment as far as it got")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from engine.evidence import write_report

    out = Path(args.out) if args.out else Path(args.experiments[0]) / "report"
    write_report(
        args.experiments, out, markdown=args.markdown, notes=args.notes, title=args.title, partial=args.partial
    )
    print(args.markdown or out / "report.md")
    return 0


PARSERS = (_add_baseline_parser, _add_experiment_parser, _add_report_parser)
