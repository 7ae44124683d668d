"""`pfs train | run | resume | runs`: the retraining side of the command line.

Registered by engine.cli.build_parser through PARSERS; its helpers come from engine.cli.common.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.cli.common import (
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
from engine.errors import PfsError


def _add_train_args(p, prefix: str = "") -> None:
    """Retraining flags; `pfs run` prefixes (`train-`) those that learning also has."""
    from engine.training.recipes import DEVICES, INITS, SCHEDULES, recipe_names

    p.add_argument(f"--{prefix}epochs", dest="train_epochs", type=positive_int, metavar="N",
                   help="training epochs (default: the recipe's, CIFAR 160)")
    p.add_argument("--scratch-b", dest="budget", action="store_true",
                   help="Scratch-B: train epochs x dense MACs / pruned MACs (the dense network's compute)")
    p.add_argument(f"--{prefix}expand", dest="train_expand", type=number, default=1.0, metavar="F",
                   help="widen the pruned network by this factor (scratch init only)")
    p.add_argument("--init", choices=INITS, default="scratch",
                   help="scratch: new random init (paper); ticket: the gated network's init weights; "
                        "inherit: a trained model's weights (--from)")
    p.add_argument("--from", dest="from_checkpoint", metavar="CHECKPOINT",
                   help="trained dense model weights for --init inherit")
    p.add_argument("--recipe", choices=recipe_names(), help="hyper-parameter preset (default: cifar; imagenet "
                   "for imagefolder:PATH)")
    p.add_argument(f"--{prefix}lr", dest="train_lr", type=number, metavar="LR", help="SGD learning rate (cifar: 0.1)")
    p.add_argument("--wd", type=number, metavar="WD", help="weight decay (cifar: 1e-4)")
    p.add_argument("--momentum", type=number, metavar="M", help="SGD momentum (0.9)")
    p.add_argument("--schedule", choices=SCHEDULES, help="step: x0.1 at 50%% and 75%%; cos: cosine")
    p.add_argument("--label-smoothing", type=number, metavar="EPS", help="cross-entropy label smoothing "
                   "(imagenet: 0.1)")
    p.add_argument(f"--{prefix}batch-size", dest="train_batch_size", type=positive_int, metavar="N",
                   help="global batch size (cifar: 128), split over torchrun processes")
    p.add_argument("--accum-steps", type=positive_int, default=1, metavar="K",
                   help="micro-batches per step (BN sees each alone, like one DDP process)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA when present")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    subset = ("--subset", "--train-subset") if prefix else ("--subset",)  # pfs run: named as its stage
    p.add_argument(*subset, dest="subset", type=positive_int, metavar="N", help="train on the first N images only")
    p.add_argument("--test-subset", type=positive_int, metavar="N", help="test on the first N images only")
    p.add_argument("--image-size", type=positive_int, metavar="PX", help="crop size for imagefolder data "
                   "(default 224)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                   help="image decoding processes for imagefolder data (default: up to 4, one per core)")


def _train_options(args, seed: int | None):
    from engine.training.train import TrainOptions

    return TrainOptions(
        epochs=args.train_epochs, budget=args.budget, expand=args.train_expand, init=args.init,
        from_checkpoint=args.from_checkpoint, structure=getattr(args, "structure", None), recipe=args.recipe,
        lr=args.train_lr, wd=args.wd, momentum=args.momentum, schedule=args.schedule,
        label_smoothing=args.label_smoothing, batch_size=args.train_batch_size, accum_steps=args.accum_steps,
        device=args.device, amp=args.amp, subset=args.subset, test_subset=args.test_subset,
        image_size=args.image_size, workers=args.workers, seed=seed)


def _report_training(summary: dict, run: Path, as_json: bool) -> None:
    if not is_main_process():
        return
    if as_json:
        print_json({k: v for k, v in summary.items() if k != "history"})
        return
    if summary.get("stage") != "train":
        print(learned_gates_line(run, summary))
        print(f"next: pfs search {quoted(run)} --flops 0.5")
        return
    print(f"{run}: test accuracy {summary['test_acc']:.4f} (best {summary['best_test_acc']:.4f} at epoch "
          f"{summary['best_epoch']}), {summary['epochs']} epoch{'s' * (summary['epochs'] != 1)}, "
          f"{human(summary['macs'])} MACs "
          f"({summary['macs_ratio']:.1%} of dense), {summary['images_per_s']:.0f} images/s on {summary['device']}")


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a run's pruned network from scratch (or ticket / inherited init)")
    p.add_argument("run", help="run directory with structure.json (made by `pfs search` or `pfs prune`)")
    p.add_argument("--structure", metavar="JSON", help="structure to train (default RUN/structure.json)")
    _add_train_args(p)
    p.add_argument("--seed", type=int, metavar="S", help="seed of init and data order (default: the run's)")
    p.add_argument("--data-root", metavar="DIR", help="where the run's data set is now, if it moved "
                   "(for imagefolder runs: the folder itself)")
    p.add_argument("--out", metavar="NEW", help="train in a new run directory holding RUN's gates and "
                   "structure (to keep several trainings of one structure)")
    p.add_argument("--overwrite", action="store_true", help="start the train stage (or --out) again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print summary.json (without history)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from engine.training.train import train_run

    options = _train_options(args, args.seed)
    bar = progress(args)
    with graceful_stop() as should_stop:
        summary = train_run(args.run, options, on_event=bar, should_stop=should_stop, overwrite=args.overwrite,
                            out=args.out, data_root=args.data_root)
    _report_training(summary, Path(args.out or args.run), args.json)
    return 0


def _add_race_parser(sub) -> None:
    from engine.training.recipes import DEMO_RACE as DEMO

    p = sub.add_parser("race", help="train a run's learned structure and another of the same MACs alike, "
                       "and compare their test accuracy")
    p.add_argument("run", help="run directory with structure.json (made by `pfs search` or `pfs prune`)")
    p.add_argument("--vs", default="uniform", metavar="uniform|random|RUN",
                   help="the other structure: uniform (same fraction of every layer, default), random "
                        "(random gates), or another run's structure.json; all at RUN's budget")
    _add_train_args(p)
    p.add_argument("--demo", action="store_true",
                   help=f"the workshop size: {DEMO['epochs']} epochs on {DEMO['subset']:,} images at batch "
                        f"{DEMO['batch_size']}, tested on {DEMO['test_subset']:,} (flags given win)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of both arms' init and data order (default: the run's)")
    p.add_argument("--dense", action="store_true", help="also train the dense network at this size once, "
                   "kept beside RUN as dense-MODEL-DATA-KEY for later races (the reference line)")
    p.add_argument("--out", metavar="DIR", help="race folder (default RUN/race): race.json and one run per arm")
    p.add_argument("--overwrite", action="store_true", help="replace another race in that folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_race)


def _cmd_race(args) -> int:
    from engine.jobs.race import prepare_race, train_arm
    from engine.training.recipes import DEMO_RACE as DEMO

    if args.demo:
        args.train_epochs = args.train_epochs or DEMO["epochs"]
        args.subset = args.subset or DEMO["subset"]
        args.test_subset = args.test_subset or DEMO["test_subset"]
        args.train_batch_size = args.train_batch_size or DEMO["batch_size"]
    race = prepare_race(args.run, args.vs, options=_train_options(args, args.seed), out=args.out,
                        overwrite=args.overwrite)
    bar = progress(args)
    summaries = {}
    with graceful_stop() as should_stop:
        for i, name in enumerate(race.arms, 1):
            print(f"pfs: race {i}/2: training {name} ({race.arm(name)})", file=sys.stderr)
            summaries[name] = train_arm(race, name, on_event=bar, should_stop=should_stop)
        dense = _race_dense(race, args.dense, bar, should_stop)
    _report_race(race, summaries, dense, args.json)
    return 0


def _race_dense(race, train: bool, bar, should_stop) -> dict:
    """The dense reference: trained now (--dense), else a cached one, else how to get it."""
    from engine.jobs.dense_reference import dense_run_name, find_dense, prepare_dense
    from engine.jobs.race import train_or_continue
    from engine.runs import RunDir

    root = race.run.parent
    config = RunDir.open(race.run).config
    if train:
        path = prepare_dense(race.run, race.options, root)
        print(f"pfs: race: training the dense network ({path})", file=sys.stderr)
        train_or_continue(path, race.options, on_event=bar, should_stop=should_stop)
    found = find_dense([root], config, race.options)
    if found is None:
        return {"test_acc": None, "run": str(root / dense_run_name(config, race.options))}
    return {"test_acc": found[0], "run": str(found[1])}


def _report_race(race, summaries: dict, dense: dict, as_json: bool) -> None:
    arms = {name: {"run": str(race.arm(name)), **{k: s.get(k) for k in ("test_acc", "best_test_acc", "macs",
                                                                         "params", "macs_ratio", "epochs")}}
            for name, s in summaries.items()}
    learned, other = (arms[name]["test_acc"] for name in race.arms)
    gap = learned - other if learned is not None and other is not None else None
    opts = race.options
    if as_json:
        print_json({"race": str(race.path), "vs": race.vs, "seed": opts["seed"], "epochs": opts["epochs"],
                    "subset": opts["subset"], "test_subset": opts["test_subset"], "arms": arms, "gap": gap,
                    "dense": dense})
        return
    images = f"{opts['subset']:,} images" if opts["subset"] else "all images"
    tested = f", tested on {opts['test_subset']:,}" if opts["test_subset"] else ""
    epochs = f"{opts['epochs']} epoch{'s' * (opts['epochs'] != 1)}" if opts["epochs"] else "the recipe's epochs"
    batch = f" at batch {opts['batch_size']}" if opts["batch_size"] else ""
    print(f"race {race.path}: {epochs} on {images}{batch}{tested}, seed {opts['seed']}")
    for name, a in arms.items():
        print(f"{name:<10} test accuracy {a['test_acc']:.4f}  {human(a['macs'])} MACs ({a['macs_ratio']:.3f} of "
              f"dense)  {human(a['params'])} params  {a['run']}")
    print(f"gap        {gap:+.4f} ({race.arms[0]} - {race.arms[1]})")
    if dense["test_acc"] is None:
        print(f"dense      unknown: add --dense to train it once (kept as {dense['run']})")
    else:
        print(f"dense      test accuracy {dense['test_acc']:.4f}  {dense['run']}")


def _add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline in one run directory: learn, search, train")
    add_learn_args(p, prefix="learn-")
    add_budget_args(p)
    _add_train_args(p, prefix="train-")
    p.add_argument("--json", action="store_true", help="print the training summary as JSON")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args) -> int:
    from engine.events import fanout
    from engine.jobs import pipeline_run

    learn = learn_config(args)
    out = out_dir(args)
    bar = progress(args)
    with graceful_stop() as should_stop:
        summary = pipeline_run(out, model=args.model, dataset=args.dataset, learn=learn, flops=args.flops,
                               train=_train_options(args, None), data_root=args.data_root,
                               download=args.download, expand=args.expand,
                               arch=arch_args(args), min_channels=args.min_channels,
                               on_event=fanout(bar, input_note_printer, warn_if_unconverged),
                               should_stop=should_stop,
                               overwrite=args.overwrite, data_options=learn_data_options(args))
    _report_training(summary, out, args.json)
    return 0


def _add_resume_parser(sub) -> None:
    p = sub.add_parser("resume", help="continue a stopped or killed run from its last checkpoint")
    p.add_argument("run", help="run directory")
    p.add_argument("--data-root", metavar="DIR", help="where the run's data set is now, if it moved "
                   "(for imagefolder runs: the folder itself)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the training summary as JSON")
    p.set_defaults(func=_cmd_resume)


def _cmd_resume(args) -> int:
    from engine.events import fanout
    from engine.jobs import resume_run

    bar = progress(args)
    with graceful_stop() as should_stop:
        summary = resume_run(args.run, on_event=fanout(bar, warn_if_unconverged), should_stop=should_stop,
                             data_root=args.data_root)
    _report_training(summary, Path(args.run), args.json)
    return 0


def _add_runs_parser(sub) -> None:
    p = sub.add_parser("runs", help="list run directories with stage, progress, budget, accuracy, speed-up")
    p.add_argument("dir", nargs="?", help="folder of runs (default ./runs or $PFS_RUNS)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_runs)


def _cmd_runs(args) -> int:
    from engine.runs import list_runs

    if args.dir and not Path(args.dir).is_dir():  # a typo must not read as "no runs yet"
        what = "is a file, not a folder" if Path(args.dir).exists() else "does not exist"
        raise PfsError(f"{quoted(args.dir)} {what}; give the folder that holds the runs (default ./runs)")
    infos = list_runs(args.dir)
    if args.json:
        print_json([i.to_json() for i in infos])
        return 0
    if not infos:
        print(f"no runs in {args.dir or 'runs'}", file=sys.stderr)
        return 0
    width = max(len("run"), *(len(i.name) for i in infos))  # names whole: default names differ at the end
    # model specs (torchvision:resnet18, path/net.py:build) whole up to 28 characters, else their end
    mw = min(28, max(len("model"), *(len(i.model) for i in infos))) + 1
    print(f"{'run':<{width}}  {'model':<{mw}}{'stage':<10}{'status':<9}{'progress':>9}{'budget':>8}{'MACs':>9}"
          f"{'held-out':>10}{'test':>8}{'speed-up':>10}{'ranks':>6}")
    for i in infos:
        budget = f"{i.budget:.2f}" if i.budget is not None else "-"
        heldout = f"{i.heldout_accuracy:.4f}" if i.heldout_accuracy is not None else "-"
        acc = f"{i.accuracy:.4f}" if i.accuracy is not None else "-"
        macs = human(i.macs) if i.macs else "-"
        speedup = f"{i.speedup:.2f}x" if i.speedup is not None else "-"
        note = f"  corrupt: {i.corrupt}" if i.corrupt else ""
        model = i.model if len(i.model) < mw else "..." + i.model[-(mw - 4):]
        print(f"{i.name:<{width}}  {model:<{mw}}{i.stage:<10}{i.status:<9}{i.progress:>9.0%}{budget:>8}"
              f"{macs:>9}{heldout:>10}{acc:>8}{speedup:>10}{i.world_size:>6}{note}")
    return 0


PARSERS = (_add_train_parser, _add_race_parser, _add_run_parser, _add_resume_parser, _add_runs_parser)
