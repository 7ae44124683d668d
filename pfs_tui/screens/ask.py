"""A one-line question over the current page (a run's label, the step to jump to)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskScreen(ModalScreen[str | None]):
    """Dismisses with the text entered (Enter), or None (Escape)."""

    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical { width: 60; max-width: 90%; height: auto; border: round $accent;
                           padding: 0 1; background: $panel; }
    AskScreen Label { width: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="ask.cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, id="answer")
            yield Label("[dim]Enter to confirm, Escape to cancel[/]")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = getattr(self.app, "blink", True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
