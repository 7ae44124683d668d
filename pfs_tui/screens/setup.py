"""Setup: pick the model and data set, set the FLOPs target and the learning knobs."""
from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Label, Select, Static

from engine.data import dataset_names
from pfs_tui.formatting import human
from pfs_tui.messages import ModelRowsReady
from pfs_tui.screens.base import PageScreen
from pfs_tui.session import FIELDS, model_rows
from pfs_tui.widgets.number_field import NumberField


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

    def on_mount(self) -> None:
        table = self.query_one("#model-table", DataTable)
        table.add_columns("model", "MACs", "params")
        self.load_rows(self.session.settings.dataset)

    @work(thread=True, exclusive=True, group="model-rows", exit_on_error=False)
    def load_rows(self, dataset: str) -> None:
        """Dense MACs/params of every model on this data set (meta tensors: ~1 s, off the UI thread)."""
        rows = model_rows(dataset, self.session.data_root)
        self.post_message(ModelRowsReady(dataset, rows))

    def on_model_rows_ready(self, message: ModelRowsReady) -> None:
        self.rows = {r.name: r for r in message.rows}
        table = self.query_one("#model-table", DataTable)
        table.clear()
        for r in message.rows:
            table.add_row(r.name, human(r.macs), human(r.params), key=r.name)
        self.query_one("#models-title", Label).update(f"dense cost on {message.dataset}")
        names = [r.name for r in message.rows]
        if self.session.settings.model in names:
            table.move_cursor(row=names.index(self.session.settings.model))
        self._describe()

    @on(DataTable.RowHighlighted, "#model-table")
    def _model_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.app.set_setting("model", event.row_key.value)
            self._describe()

    @on(DataTable.RowSelected, "#model-table")
    def _model_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#budget", NumberField).input.focus()

    def _describe(self) -> None:
        from sample_models import model_entry

        name = self.session.settings.model
        row = getattr(self, "rows", {}).get(name)
        if row is None:
            cost = "counting MACs..."
        elif row.macs is None:
            cost = f"cannot run at this input size: {row.reason}"
        else:
            cost = f"{human(row.macs)} MACs, {human(row.params)} params (dense)"
        self.query_one("#model-desc", Static).update(f"{name}: {model_entry(name).description}\n{cost}")

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
