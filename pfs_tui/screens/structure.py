"""Structure: the pruned widths at the FLOPs target, live as the target or gates move.

`l` switches the target between MACs and measured latency (a fraction of the dense
network's, CPU, batch 1): latency probes are timed in the search worker, never on the UI
thread. The run's `pfs bench` headline, when it has one, is shown under the summary."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static
from textual.worker import get_current_worker

from engine.errors import PfsError, StopRequested
from engine.runs import atomic_write_json, measured_speed
from pfs_tui.formatting import explorer_terms, human
from pfs_tui.messages import StructureReady
from pfs_tui.screens.base import PageScreen
from pfs_tui.session import FIELDS, build_model, file_safe, gates_fit, latency_structures, structures
from pfs_tui.tasks import run_busy
from pfs_tui.widgets.channel_bars import ChannelBars
from pfs_tui.widgets.explanation import STRUCTURE as STRUCTURE_TEXT
from pfs_tui.widgets.explanation import Explanation
from pfs_tui.widgets.number_field import NumberField

REFRESH_HZ = 4




def _tie_cause(structure) -> str:
    """Why there are ties, in a few words: closed gates filling the target, or gates not separated."""
    if not structure.tied:
        return ""
    if structure.threshold == 0:
        return " (closed gates: target above the open share; r or target, i)"
    return " (gates not separated: learn longer or raise gamma, i)"


class StructureScreen(PageScreen):
    """Search runs on every change (it is analytic: tens of ms even for ResNet-56)."""

    PAGE = "structure"
    COMPACT_FOOTER = True  # seven keys of its own and the app's two
    AUTO_FOCUS = "#bars-scroll"
    CSS_PATH = "structure.tcss"
    BINDINGS = [
        # One footer entry for both directions: at 80 columns the footer has room for ~8 keys.
        Binding("plus,equals_sign,right", "nudge(1)", "Target", id="structure.more", key_display="+/-"),
        Binding("minus,left", "nudge(-1)", "Target -", id="structure.less", show=False),
        Binding("e", "export", "Export", id="structure.export"),
        Binding("t", "app.retrain", "Retrain", id="structure.retrain"),
        Binding("v", "app.race", "Race", id="structure.race"),
        Binding("x", "stop_training", "Stop retraining", id="structure.stop", show=False),
        Binding("i", "explain", "Explain", id="structure.explain"),
        Binding("l", "toggle_latency", "Latency", id="structure.latency"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.structure = None
        self.learned = False  # whether the structure comes from learned gates (not all 1)
        self.uniform = None
        self.error = ""
        self._key = None
        self._drawn_key = None
        self._model_key = None
        self._model = None
        self.by_latency = False  # the target is a fraction of the dense network's measured latency
        self.latency = None  # the latency search's result behind the structure shown

    def compose_body(self) -> ComposeResult:
        spec = FIELDS["budget"]
        with Horizontal(id="structure-top"):
            yield NumberField(spec.label, self.session.settings.budget, minimum=spec.minimum,
                              maximum=spec.maximum, step=0.01, help=spec.help, id="budget")
        yield Static("", id="structure-summary")
        yield Explanation(STRUCTURE_TEXT, id="explain")
        yield Static(" kept/dense channels per layer   (u, │: uniform network of the same MACs)",
                     id="bars-title")
        with VerticalScroll(id="bars-scroll"):
            yield ChannelBars(id="bars")

    def on_mount(self) -> None:
        self.set_interval(1 / REFRESH_HZ, self.update_structure)
        self.update_structure()
        # The bars have focus (AUTO_FOCUS: up/down scroll them); + and - move the target
        # from anywhere on the page, and a click or Tab into the field allows typing a value.

    def action_explain(self) -> None:
        """Show or hide what the threshold and ties are, and how this differs from uniform."""
        self.query_one(Explanation).toggle()

    def action_toggle_latency(self) -> None:
        """Switch the target between MACs and measured latency (timed in the search worker)."""
        self.by_latency = not self.by_latency
        self.set_status("timing probes..." if self.by_latency else "MACs target")
        self._key = None
        self.update_structure()

    def action_stop_training(self) -> None:
        """Stop this run's retraining (as x on its page)."""
        self.app.stop_run_training(self.session.run_path)

    def action_nudge(self, direction: int) -> None:
        self.query_one("#budget", NumberField).nudge(direction)

    def on_screen_resume(self) -> None:
        field = self.query_one("#budget", NumberField)
        budget = self.session.settings.budget
        if "budget" not in self.session.invalid and (field.value != budget or field.error):
            field.set_value(budget)
        self.call_after_refresh(self.update_structure)  # page first, then a search if needed

    @on(NumberField.Changed, "#budget")
    def _budget(self, event: NumberField.Changed) -> None:
        self.app.set_setting("budget", event.value)
        self._key = None  # search and redraw even when the value is the one before a refusal
        self.update_structure()  # at once, not on the next tick: this is the slider

    @on(NumberField.Refused, "#budget")
    def _budget_refused(self, event: NumberField.Refused) -> None:
        self.session.invalid["budget"] = f"{event.field.label}: {event.why}"
        self.set_status("target refused")

    def _model_for_settings(self, settings):
        key = (settings.model, settings.dataset, settings.expand)
        if key != self._model_key:
            model, size = build_model(settings, self.session.data_root)
            self._model, self._input_size, self._model_key = model, size, key
            return model, size
        return self._model, self._input_size

    def update_structure(self) -> None:
        """Search again (in a worker) if the target, the model or the gates changed."""
        s, log = self.session.settings, self.session.log
        key = (s.model, s.dataset, s.expand, s.budget, log.gates_step, id(log.gates), self.by_latency)
        if key == self._key or not self.is_current:
            return
        self._key = key
        self._search(key, replace(s), log.gates, s.budget, self.by_latency)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, key: tuple, settings, gates, budget: float, by_latency: bool) -> None:
        # Off the UI thread: a search takes tens of ms (more for big models), building a
        # foreign model takes seconds, latency probes are timed, and a held + key must not
        # queue them up in front of the next redraw. A newer search cancels this one.
        worker = get_current_worker()
        latency = None
        try:
            model, size = self._model_for_settings(settings)
            gates = gates if gates_fit(gates, model.widths) else None
            if by_latency:
                latency, uniform = latency_structures(model, size, gates, budget, lambda: worker.is_cancelled)
                found = latency.structure
            else:
                found, uniform = structures(model, size, gates, budget)
            error = ""
        except StopRequested:
            return
        except PfsError as exc:
            found = uniform = None
            error = explorer_terms(str(exc))
        if not worker.is_cancelled:
            self.post_message(StructureReady(key, found, uniform, error, gates is not None, latency))

    def on_structure_ready(self, message: StructureReady) -> None:
        if message.key != self._key:
            return  # a newer target or newer gates are being searched
        self.structure, self.uniform, self.error = message.structure, message.uniform, message.error
        self.latency = message.latency
        self.learned = message.learned
        self._drawn_key = message.key
        self._draw(message.learned)

    @property
    def settled(self) -> bool:
        """Whether what is drawn is the search for the current target and gates."""
        return self._key is not None and self._drawn_key == self._key

    def _draw(self, learned: bool) -> None:
        summary = self.query_one("#structure-summary", Static)
        bars = self.query_one("#bars", ChannelBars)
        if self.structure is None:
            summary.update(f"[b red]{escape(self.error)}[/]")
            bars.show({}, {})
            self.set_status("no structure at this target")
            return
        st, un = self.structure, self.uniform
        log = self.session.log
        source = (f"learned gates at step {log.gates_step}" if learned
                  else "initial gates (all 1 = uniform)")
        summary.update(
            f"[b]pruned[/b]  MACs [b]{human(st.macs)}[/b] ({st.macs / st.dense_macs:.3f} of {human(st.dense_macs)})"
            f"  params {human(st.params)}  speed-up [b]{st.speedup:.2f}x[/b]\n"
            f"[cyan]uniform[/] MACs {human(un.macs)} ({un.macs / un.dense_macs:.3f})  params {human(un.params)}"
            f"  speed-up {un.speedup:.2f}x\n"
            f"threshold {st.threshold:.4g}  ties {st.tied}{_tie_cause(st)}  · {source}" + self._speed_line())
        bars.show(st.dense_widths, st.widths, un.widths)
        lat = self.latency
        self.set_status(f"{st.macs / st.dense_macs:.2f} MACs · {st.speedup:.2f}x"
                        + (f" · {lat.measured_ms:.2f} ms" if lat else ""))

    def _speed_line(self) -> str:
        """The latency target and what was measured, or the run's `pfs bench` headline."""
        lat = self.latency
        if self.by_latency and lat is not None:
            return (f"\n[b]latency[/b] target {lat.budget_ms:.2f} ms ({lat.budget_ms / lat.dense_ms:.2f} of dense "
                    f"{lat.dense_ms:.2f} ms, cpu, batch 1): measured {lat.search_ms:.2f} ms, again "
                    f"{lat.measured_ms:.2f} ms · l: MACs target")
        run = self.session.run_path
        measured = measured_speed(run) if run is not None else None
        return f"\nmeasured (pfs bench, saved structure): {measured.line()}" if measured else ""

    def action_export(self) -> None:
        """Write structure.json: into the run (via the engine's search_run when learning
        finished, so `pfs train RUN` trains exactly this), else next to the runs."""
        path = self.export()
        if path is not None:
            self.notify(f"wrote {path}", markup=False)

    def export(self) -> Path | None:
        if self.structure is None:
            self.notify(self.error or "no structure to export", severity="error", markup=False)
            return None
        session = self.session
        if self.app.refuse_when_following():
            return None
        busy = run_busy(session.run_path) if session.run_path is not None else ""
        if busy:
            self.notify(busy, severity="warning", markup=False)
            return None
        if not self.learned:  # all gates 1: the tie-break's pick, no better than uniform, said plainly
            self.notify("no learned gates: this structure is the uniform-like one every gate at 1 gives; "
                        "learn gates first (s on the Learn page), or open a run's gates (Runs, g)",
                        severity="warning", markup=False)
            return None
        if session.run_path is not None and session.run_finished:
            from engine.jobs import search_run

            try:
                search_run(session.run_path, session.settings.budget)
            except PfsError as exc:  # e.g. the run was trained on its structure: keep it
                self.notify(explorer_terms(str(exc)), severity="error", markup=False)
                return None
            return session.run_path / "structure.json"
        if session.run_path is not None:
            path = session.run_path / "structure.json"
        else:
            s = session.settings
            path = session.runs_root / f"structure-{file_safe(s.model)}-{s.dataset}-{s.budget:g}.json"
        atomic_write_json(path, self.structure.to_json())
        return path
