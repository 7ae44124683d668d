"""Setup: pick the model and data set, set the FLOPs target and the learning knobs."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from engine.data import dataset_names
from engine.errors import PfsError
from engine.models.spec import allow_model_code
from pfs_tui.demo_schedule import DEMO_NAME, DEMO_STEPS
from pfs_tui.formatting import explorer_terms, human
from pfs_tui.messages import ModelCostReady, ModelRowsReady
from pfs_tui.screens.base import PageScreen
from pfs_tui.session import FIELDS, ModelRow, model_cost, model_rows, spec_description, uncounted_row
from pfs_tui.widgets.number_field import NumberField

SPEC_HINT = "spec: torchvision:NAME, file.py:fn"
# A browser tab that follows the presenter shares the room's CPU: building a torchvision
# model to count it takes seconds of it, times thirty tabs.
FOLLOWER_BUILDS_NOTHING = "not counted: this explorer follows a run, and builds no models (the room shares the CPU)"
# What the widgets without a FieldSpec mean, for the line under the form.
MEANINGS = {
    "model-table": "the network whose channels are pruned (random init); Enter picks it, Tab: the settings",
    "model-spec": "any model `pfs learn` takes: torchvision:NAME, timm:NAME, file.py:factory; Enter checks it",
    "dataset": "the images the gates are learned on and the pruned network is trained and tested on",
    "reg": "mean: gamma * (mean gate - r)^2, the paper's; l1: gamma * mean gate, the baseline",
    "start": "start gate learning with these settings (s from anywhere on the page)",
}


class SpecInput(Input):
    """Where a model spec is typed; Escape gives the keys back to the page."""

    BINDINGS = [Binding("escape", "leave", "Leave field", id="field.leave", key_display="esc")]

    def action_leave(self) -> None:
        self.screen.focus_home()


class SetupScreen(PageScreen):
    """Model list with dense costs on the left, every setting on the right."""

    PAGE = "setup"
    AUTO_FOCUS = "#model-table"
    CSS_PATH = "setup.tcss"
    BINDINGS = [
        Binding("s", "app.learn", "Start learning", id="setup.learn"),
    ]

    def compose_body(self) -> ComposeResult:
        s = self.session.settings
        with Horizontal(id="setup-body"):
            with Vertical(id="models"):
                yield Label("", id="models-title")
                yield SpecInput(placeholder=SPEC_HINT, compact=True, id="model-spec")
                yield Static("", id="model-note")
                yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="model-desc")
            with VerticalScroll(id="form", can_focus=False):  # its fields are the tab stops
                with Horizontal(classes="choice"):
                    yield Label("data set")
                    yield Select([(d, d) for d in dataset_names()], value=s.dataset, allow_blank=False,
                                 compact=True, id="dataset")
                with Horizontal(classes="choice"):
                    yield Label("regulariser")
                    yield Select([("mean (paper)", "mean"), ("l1 (baseline)", "l1")], value=s.reg,
                                 allow_blank=False, compact=True, id="reg")
                for spec in FIELDS.values():
                    yield NumberField(spec.label, getattr(s, spec.name), minimum=spec.minimum,
                                      maximum=spec.maximum, step=spec.step, integer=spec.integer,
                                      help=spec.help, id=spec.name)
                yield Button("Start learning", id="start", variant="primary", compact=True)
                yield Static("", id="schedule")
        yield Static("", id="field-help")

    def on_mount(self) -> None:
        self.rows: dict[str, ModelRow] = {}
        self._counted: dict[tuple[str, str], ModelRow] = {}  # (data set, spec) -> row with costs
        self._wanted = ""  # the highlighted spec whose cost is awaited
        self._cost_timer = None
        self._name_width: int | None = None
        self.load_rows(self.session.settings.dataset)
        self._show_schedule()
        self._show_meaning(self.focused)

    def on_descendant_focus(self, event) -> None:
        self._show_meaning(event.widget)

    def _show_meaning(self, widget) -> None:
        """Say what the focused widget means, on screen (a tooltip shows only under a mouse),
        and mark its row as focused."""
        for row in self.query(".-focused"):
            row.remove_class("-focused")
        node, meaning = widget, ""
        while node is not None and node is not self:
            if isinstance(node, NumberField) or node.has_class("choice"):
                node.add_class("-focused")
            if not meaning and node.id in FIELDS:
                meaning = f"{FIELDS[node.id].label}: {FIELDS[node.id].help}"
            elif not meaning and node.id in MEANINGS:
                meaning = MEANINGS[node.id]
            node = node.parent
        self.query_one("#field-help", Static).update(meaning or MEANINGS["model-table"])

    def _show_schedule(self) -> None:
        """Which gate-learning schedule Start runs: the demo one, or steps / whole epochs."""
        s = self.session.settings
        if s.steps == DEMO_STEPS:
            text = DEMO_NAME
        elif s.steps:
            text = f"schedule: {s.steps} steps of {s.batch_size} images (epochs unused)"
        else:
            text = f"schedule: {s.epochs} whole epoch{'s' * (s.epochs != 1)} (steps 0)"
        self.query_one("#schedule", Static).update(text)

    @work(thread=True, exclusive=True, group="model-rows", exit_on_error=False)
    def load_rows(self, dataset: str) -> None:
        """Dense MACs/params of every sample model on this data set (meta tensors: ~1 s, off
        the UI thread), and torchvision's models, counted one by one when highlighted."""
        rows = model_rows(dataset, self.session.data_root)
        self.post_message(ModelRowsReady(dataset, rows))

    def on_model_rows_ready(self, message: ModelRowsReady) -> None:
        rows = [self._counted.get((message.dataset, r.name), r) for r in message.rows]
        names = [r.name for r in rows]
        model = self.session.settings.model
        if model not in names:  # a typed spec (or one kept from last time) stays listed
            try:
                rows.append(self._counted.get((message.dataset, model)) or uncounted_row(model))
                names.append(model)
            except PfsError:
                pass
        self.rows = {r.name: r for r in rows}
        self._fill()
        self.query_one("#models-title", Label).update(f"dense cost on {message.dataset}")
        self._describe()

    def _fill(self) -> None:
        """(Re)draw the list with the name column as wide as the panel allows, so MACs and
        params stay in view at 80 columns (long torchvision names end in '…'; the line
        under the list names the highlighted model in full)."""
        table = self.query_one("#model-table", DataTable)
        width = table.size.width
        # 3 columns of 1+1 padding, a scrollbar, and the two counts ('95.8M', 'params').
        self._name_width = max(12, width - 6 - 2 - 7 - 6) if width else None
        table.clear(columns=True)
        table.add_column("model", key="model", width=self._name_width)
        table.add_column("MACs", key="macs")
        table.add_column("params", key="params")
        for r in self.rows.values():
            table.add_row(*self._cells(r), key=r.name)
        model = self.session.settings.model
        if model in table.rows:
            table.move_cursor(row=table.get_row_index(model))

    def on_resize(self) -> None:
        self.call_after_refresh(self._refit)

    def _refit(self) -> None:
        table = self.query_one("#model-table", DataTable)
        if self.rows and table.size.width and max(12, table.size.width - 21) != self._name_width:
            self._fill()

    def _cells(self, row: ModelRow) -> tuple[str, str, str]:
        name = row.name
        if self._name_width and len(name) > self._name_width:
            # Narrow: 'tv:' for 'torchvision:' keeps the distinguishing part in view.
            name = name.replace("torchvision:", "tv:", 1)
        if self._name_width and len(name) > self._name_width:
            name = name[: self._name_width - 1] + "…"
        return name, human(row.macs), human(row.params)

    @on(DataTable.RowHighlighted, "#model-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.app.set_setting("model", event.row_key.value)
            self._describe()

    @on(DataTable.RowSelected, "#model-table")
    def _model_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#budget", NumberField).input.focus()

    @on(Input.Submitted, "#model-spec")
    def _spec_typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.app.follow:
            self._note(FOLLOWER_BUILDS_NOTHING, error=True)
            return
        self._note(f"checking {text}...")
        try:
            allow_model_code(text)  # typed here: the user's own code, theirs to run
        except PfsError:
            pass  # a malformed spec: count_model says why
        self.count_model(text, self.session.settings.dataset, typed=True)

    @on(Input.Changed, "#model-spec")
    def _spec_edited(self, event: Input.Changed) -> None:
        if self.query_one("#model-note", Static).has_class("error"):
            self._note("")  # the refusal was about the text being corrected

    @work(thread=True, group="model-cost", exit_on_error=False)
    def count_model(self, spec: str, dataset: str, typed: bool) -> None:
        """Build the model a spec names through the engine (as `pfs learn` will) and count
        its dense cost; a refusal comes back as the engine's message."""
        if not typed and spec != self._wanted:
            return  # the cursor moved on while this waited
        try:
            row, error = model_cost(spec, dataset, self.session.data_root), ""
        except PfsError as exc:
            row, error = None, str(exc)
        self.post_message(ModelCostReady(spec, dataset, row, error, typed))

    def on_model_cost_ready(self, message: ModelCostReady) -> None:
        row = message.row
        if row is not None:
            self._counted[(message.dataset, row.name)] = row
        elif not message.typed:
            row = ModelRow(message.spec, "", None, None, explorer_terms(message.error).splitlines()[0][:200])
            self._counted[(message.dataset, message.spec)] = row
        if row is not None and message.dataset == self.session.settings.dataset:
            table = self.query_one("#model-table", DataTable)
            self.rows[row.name] = row
            if row.name in table.rows:
                for key, value in zip(("model", "macs", "params"), self._cells(row), strict=True):
                    table.update_cell(row.name, key, value)
            else:
                table.add_row(*self._cells(row), key=row.name)
        if message.typed:
            if message.row is None:  # refused: the model stays what it was
                self._note(f"cannot use {message.spec}: {explorer_terms(message.error)}", error=True)
                return
            self._note("")
            self.query_one("#model-spec", Input).value = ""
            self.app.set_setting("model", message.row.name)
            table = self.query_one("#model-table", DataTable)
            if message.row.name in table.rows:
                table.move_cursor(row=table.get_row_index(message.row.name))
            self.focus_home()  # the model is chosen: the page's keys (s: start learning) work again
        self._describe()

    def _note(self, text: str, error: bool = False) -> None:
        note = self.query_one("#model-note", Static)
        note.update(text)
        note.set_class(error, "error")
        note.display = bool(text)

    def _describe(self) -> None:
        name = self.session.settings.model
        row = self.rows.get(name)
        try:
            description = spec_description(name)
        except PfsError as exc:
            description = explorer_terms(str(exc))
        if (row is None or not row.counted) and self.app.follow:
            cost = FOLLOWER_BUILDS_NOTHING
        elif row is None or not row.counted:
            cost = "counting MACs..."
            self._count_later(name)
        elif row.macs is None:
            cost = f"cannot run at this input size: {row.reason}"
        else:
            cost = f"{human(row.macs)} MACs, {human(row.params)} params (dense)"
        self.query_one("#model-desc", Static).update(f"{name}: {description}\n{cost}")

    def _count_later(self, spec: str) -> None:
        """Count a highlighted model once the cursor rests on it (a quarter second), so that
        scrolling past 80 torchvision models builds none of them."""
        if spec == self._wanted and self._cost_timer is not None:
            return
        self._wanted = spec
        if self._cost_timer is not None:
            self._cost_timer.stop()
        dataset = self.session.settings.dataset

        def count() -> None:
            self._cost_timer = None
            if self._wanted == spec and self.session.settings.model == spec:
                self.count_model(spec, dataset, typed=False)

        self._cost_timer = self.set_timer(0.25, count)

    @on(Select.Changed, "#dataset")
    def _dataset(self, event: Select.Changed) -> None:
        if event.value != self.session.settings.dataset:
            self.app.set_setting("dataset", event.value)
            self.load_rows(event.value)

    @on(Select.Changed, "#reg")
    def _reg(self, event: Select.Changed) -> None:
        self.app.set_setting("reg", event.value)

    @on(NumberField.Changed)
    def _number(self, event: NumberField.Changed) -> None:
        self.session.invalid.pop(event.field.id, None)
        self.app.set_setting(event.field.id, event.value)
        self._show_schedule()

    @on(NumberField.Refused)
    def _refused(self, event: NumberField.Refused) -> None:
        # Learning must not start from a stale value the user is still correcting.
        self.session.invalid[event.field.id] = f"{event.field.label}: {event.why}"

    @on(Button.Pressed, "#start")
    async def _start(self) -> None:
        await self.app.action_learn()

    def on_screen_resume(self) -> None:
        # Another page (replay, the structure page's target) may have changed a setting.
        s = self.session.settings
        for name in FIELDS:
            field = self.query_one(f"#{name}", NumberField)
            if name in self.session.invalid:
                continue  # still being corrected here
            if field.value != getattr(s, name) or field.error:
                field.set_value(getattr(s, name))
        self._show_schedule()
