"""`pfs report`: an experiment directory as Markdown tables, PNG figures and JSON.

Reads only EXP/config.json and EXP/results.json (what the grid recorded), so a report can
be re-made at any time, on any machine, without the run directories' weights. Figures use
matplotlib's Agg backend (no display needed): correlation heat-maps (rows and columns are
seeds, one map per pre-training epoch count, as in the paper), accuracy versus MACs per
arm with error bars, and per-layer keep ratios of PFS versus uniform versus slimming.
"""
from __future__ import annotations

from pathlib import Path

from engine.errors import PfsError, plural
from engine.evidence import figures
from engine.evidence.arms import LEARNED
from engine.evidence.experiments import Experiment
from engine.runs import atomic_write_bytes, atomic_write_json


def expected_cells(exp: Experiment) -> list[str]:
    """The names of every cell the experiment's settings ask for."""
    s = exp.settings
    if exp.kind == "baselines":
        return [f"{a}-s{seed}" for seed in s["seeds"] for a in s["arms"]]
    if exp.kind == "correlation":
        return [f"{a}-e{e}-s{seed}" for seed in s["seeds"] for a in s["arms"] for e in s["pretrain_epochs"]
                if not (a == "slimming" and e == 0)]
    return [f"{i}-s{seed}" for seed in s["seeds"] for i in s["inits"]]


def write_report(experiments: list[str | Path], out: str | Path, *, markdown: str | Path | None = None,
                 notes: str | Path | None = None, title: str = "pfs report", partial: bool = False) -> dict:
    """Write report.md (or `markdown`), report.json and figures into `out`; returns the JSON."""
    out = Path(out)
    md_path = Path(markdown) if markdown else out / "report.md"
    if out.exists() and not out.is_dir():
        raise PfsError(f"--out {out} is a file; name a folder for report.json and the figures")
    if md_path.is_dir():
        raise PfsError(f"--markdown {md_path} is a folder; name the Markdown file to write")
    if notes and not Path(notes).is_file():
        raise PfsError(f"--notes {notes} does not exist (or is not a file); write it first or leave --notes out")
    loaded = []
    for path in experiments:
        exp = Experiment.open(path)
        results = exp.results()
        missing = [c for c in expected_cells(exp) if c not in results.get("cells", {})]
        if missing and not partial:
            raise PfsError(f"{exp.path} is not finished ({len(missing)} of {len(expected_cells(exp))} cells "
                           "missing); rerun its `pfs experiment` command to finish it, or pass --partial")
        if not results.get("cells"):
            raise PfsError(f"{exp.path} has no finished cell yet; run its `pfs experiment` command first")
        loaded.append((exp, results, missing))
    models = {(e.settings.get("model"), e.settings.get("dataset")) for e, _, _ in loaded if e.kind != "ticket"}
    if len(models) > 1:
        raise PfsError("the experiments are of different models or data sets ("
                       + "; ".join(f"{m} on {d}" for m, d in sorted(models)) + "); report each on its own")
    out.mkdir(parents=True, exist_ok=True)
    text = [f"# {title}", ""]
    if notes:
        text += [Path(notes).read_text(encoding="utf-8").rstrip(), ""]
    report = {"experiments": []}
    for exp, results, missing in loaded:
        section, entry = _SECTIONS[exp.kind](exp, results, out, md_path.parent)
        if missing:
            section = [f"> Incomplete: {len(missing)} cell(s) not finished ({', '.join(missing[:6])}"
                       f"{', ...' if len(missing) > 6 else ''}).", "", *section]
        text += [f"## {exp.kind}: `{exp.path.name}`", "", _settings_line(exp), "", *section, ""]
        report["experiments"].append({"path": str(exp.path), "kind": exp.kind, "settings": exp.settings,
                                      "missing": missing, **entry})
    atomic_write_bytes(md_path, ("\n".join(text).rstrip() + "\n").encode())
    atomic_write_json(out / "report.json", report)
    return report


def _settings_line(exp: Experiment) -> str:
    shown = {k: _short_path(v) if k in ("run", "pretrained") else v for k, v in exp.settings.items()
             if v not in (None, {}, []) and k != "arms"}
    return "Settings: " + ", ".join(f"{k}={v}" for k, v in shown.items())


def _short_path(path: str) -> str:
    """A stored absolute path, relative to the working directory when it lies below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _pm(stat: dict | None, fmt: str = "{:.4f}") -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    return fmt.format(stat["mean"]) + (" ± " + fmt.format(stat["sd"]) if stat.get("n", 0) > 1 else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path.resolve())


def _baselines(exp: Experiment, results: dict, out: Path, md_dir: Path) -> tuple[list[str], dict]:
    arms = {a: results["arms"][a] for a in exp.settings["arms"] if a in results.get("arms", {})}
    rows = [[a, _pm(r["test_acc"]), _pm(r["best_test_acc"]), f"{r['macs']['mean'] / 1e6:.2f}M",
             f"{r['macs_ratio']['mean']:.3f}", f"{r['params']['mean'] / 1e3:.1f}K",
             _pm(r["finding_seconds"], "{:.1f}"), str(r["test_acc"]["n"])] for a, r in arms.items()]
    lines = _table(["arm", "test acc (final, mean ± sd)", "best test acc", "MACs", "of dense", "params",
                    "finding time (s)", "seeds"], rows)
    paired = paired_differences(results)
    if paired:
        lines += ["", "Paired by seed (the same seed's cells of two arms share the data order and init):", "",
                  *(f"- {verdict_line(d)}" for d in paired)]
        behind_or_level = [d["versus"] for d in paired if d["verdict"] != "ahead"]
        if behind_or_level:
            lines += ["", f"**PFS is not ahead of {', '.join(behind_or_level)}** at this budget: each interval "
                      "includes 0 or lies below it, or too few seeds finished to tell."]
    learning = learning_lines(exp, results)
    if learning:
        lines += ["", "Gate learning (the arms that learn gates):", "", *(f"- {x}" for x in learning)]
    cost = _finding_cost(results)
    if cost:
        lines += ["", cost]
    acc_png = out / f"{exp.path.name}-accuracy-vs-macs.png"
    keep_png = out / f"{exp.path.name}-keep-ratios.png"
    figures.accuracy_vs_macs(arms, acc_png)
    figures.keep_ratios({a: arms[a]["keep_ratios"] for a in ("pfs", "uniform", "slimming") if a in arms},
                        results["groups"], keep_png)
    lines += ["", f"![accuracy versus MACs]({_rel(acc_png, md_dir)})", "",
              f"![per-layer keep ratios]({_rel(keep_png, md_dir)})"]
    return lines, {"arms": arms, "figures": [str(acc_png), str(keep_png)], "finding_cost": cost,
                   "paired_differences": paired, "gate_learning": learning}


def learning_lines(exp: Experiment, results: dict) -> list[str]:
    """Per arm that learns gates: how many cells met r, and whether the gated random network's
    held-out accuracy sat near chance (under twice chance), so that a weak PFS cell is named."""
    lines = []
    for arm in (a for a in exp.settings.get("arms", []) if a in LEARNED):
        cells = [c for c in results.get("cells", {}).values() if c.get("arm") == arm]
        facts = [c["learn"] for c in cells if c.get("learn")]
        if not cells:
            continue
        if not facts:
            lines.append(f"{arm}: gate learning not recorded for its {len(cells)} cell(s) (made before pfs "
                         "recorded it)")
            continue
        chance = 1 / facts[0].get("classes", 10)
        missed = sum(not f["converged"] for f in facts)
        near = sum(f["heldout_acc"] is not None and f["heldout_acc"] < 2 * chance for f in facts)
        accs = [f["heldout_acc"] for f in facts if f["heldout_acc"] is not None]
        opens = [f["open_frac"] for f in facts if f["open_frac"] is not None]
        lines.append(
            f"{arm}: {missed} of {plural(len(facts), 'cell')} had no evaluated step with at most r open, so kept their "
            f"last gates (open fraction {min(opens):.2f}-{max(opens):.2f}); held-out accuracy of the gated "
            f"random network {min(accs):.2f}-{max(accs):.2f}, {near} of {len(facts)} near chance "
            f"(under {2 * chance:.2f})" + (f"; {len(cells) - len(facts)} cell(s) not recorded"
                                           if len(facts) < len(cells) else ""))
    return lines



# Student's t at 0.975 for 1..30 degrees of freedom (beyond: the normal's 1.96 is within 4%).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def paired_differences(results: dict, reference: str = "pfs") -> list[dict]:
    """PFS's test accuracy minus each other arm's, paired by seed: `arm` (pfs) - `versus`.

    Pairing removes what a seed shares across arms (data order, init draw), so the interval
    is the one that decides whether the arms differ: mean, standard error and a 95% t
    interval over the seeds both arms finished (None where fewer than two did).
    """
    by_arm: dict[str, dict[int, float]] = {}
    for cell in results.get("cells", {}).values():
        by_arm.setdefault(cell["arm"], {})[cell["seed"]] = cell["test_acc"]
    if reference not in by_arm:
        return []
    out = []
    for arm in (a for a in results.get("arms", by_arm) if a != reference and a in by_arm):
        seeds = sorted(set(by_arm[reference]) & set(by_arm[arm]))
        diffs = [by_arm[reference][s] - by_arm[arm][s] for s in seeds]
        n = len(diffs)
        if not n:
            continue
        mean = sum(diffs) / n
        se = (sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) ** 0.5 if n > 1 else None
        t = _T975[n - 2] if 1 < n <= len(_T975) + 1 else 1.96
        ci = [mean - t * se, mean + t * se] if se is not None else None
        out.append({"arm": reference, "versus": arm, "n": n, "seeds": seeds, "mean": mean, "se": se, "ci95": ci,
                    "verdict": _verdict(ci)})
    return out


def _verdict(ci: list[float] | None) -> str:
    if ci is None:
        return "too few seeds"
    return "ahead" if ci[0] > 0 else "behind" if ci[1] < 0 else "level"


def verdict_line(d: dict) -> str:
    """"PFS - uniform = +0.8 +- 0.3 points (95% CI 0.2..1.4, 5 seeds): ahead", in accuracy points."""
    head = f"{d['arm'].upper() if d['arm'] == 'pfs' else d['arm']} - {d['versus']} = {100 * d['mean']:+.2f}"
    seeds = f"{d['n']} seed{'s' * (d['n'] != 1)}"
    if d["ci95"] is None:
        return f"{head} points ({seeds}): too few seeds to tell"
    low, high = (100 * x for x in d["ci95"])
    return f"{head} ± {100 * d['se']:.2f} points (95% CI {low:+.2f}..{high:+.2f}, {seeds}): {d['verdict']}"


def _finding_cost(results: dict) -> str:
    """PFS's structure-finding time against the pre-training the trained-weight arms paid for."""
    cells = results.get("cells", {}).values()
    pfs = [c["finding_seconds"] for c in cells if c["arm"] == "pfs"]
    pre = [c["timing"]["pretrain"] for c in cells if "pretrain" in c.get("timing", {})]
    if not pfs or not pre:
        return ""
    a, b = sum(pfs) / len(pfs), sum(pre) / len(pre)
    return (f"Finding a PFS structure took {a:.1f} s (mean); the pre-training the slimming and pretrained-pfs "
            f"arms need before their search took {b:.1f} s ({b / a:.1f}x the PFS time) at this schedule.")


def _correlation(exp: Experiment, results: dict, out: Path, md_dir: Path) -> tuple[list[str], dict]:
    corr = results.get("correlation", {})
    epochs = exp.settings["pretrain_epochs"]
    rows = []
    for arm, by_epoch in corr.items():
        rows.append([arm, *(("n/a" if by_epoch.get(str(e), {}).get("mean") is None
                             else f"{by_epoch[str(e)]['mean']:.3f}") for e in epochs)])
    lines = ["Mean off-diagonal Pearson correlation of per-layer keep ratios across seeds (epoch 0 = PFS at "
             "random init; n/a: slimming at init has every BN scale 1, nothing to rank):", "",
             *_table(["arm", *(f"{e} epoch{'s' * (e != 1)}" for e in epochs)], rows)]
    pngs = []
    for arm, by_epoch in corr.items():
        png = out / f"{exp.path.name}-correlation-{arm}.png"
        figures.correlation_maps(arm, by_epoch, png)
        pngs.append(png)
        lines += ["", f"![correlation {arm}]({_rel(png, md_dir)})"]
    return lines, {"correlation": corr, "figures": [str(p) for p in pngs]}


def _ticket(exp: Experiment, results: dict, out: Path, md_dir: Path) -> tuple[list[str], dict]:
    inits = {i: results["inits"][i] for i in exp.settings["inits"] if i in results.get("inits", {})}
    rows = [[i, _pm(r["test_acc"]), _pm(r["best_test_acc"]), str(r["test_acc"]["n"])] for i, r in inits.items()]
    lines = [f"Structure of `{_short_path(exp.settings['run'])}` trained from each initialisation (ticket: the "
             "gated network's own init weights; inherit: the dense network's pre-trained weights):", "",
             *_table(["init", "test acc (final, mean ± sd)", "best test acc", "seeds"], rows)]
    return lines, {"inits": inits, "figures": []}


_SECTIONS = {"baselines": _baselines, "correlation": _correlation, "ticket": _ticket}

__all__ = ["expected_cells", "paired_differences", "verdict_line", "write_report"]
