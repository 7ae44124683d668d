"""The one-line page bar: which page is shown, and a click or number key to change it."""
from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

PAGES = (("setup", "1 Setup"), ("learn", "2 Learn"), ("structure", "3 Structure"),
         ("runs", "4 Runs"), ("compare", "5 Compare"), ("race", "6 Race"), ("help", "? Help"))


class NavBar(Widget):
    """Page tabs; the current one highlighted, any one clickable."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; }
    """

    def __init__(self, current: str, title: str = "pfs") -> None:
        super().__init__()
        self.current = current
        self.title = title
        self.extra = ""
        self._spans: list[tuple[int, int, str]] = []

    def set_extra(self, text: str) -> None:
        """Right-aligned status text (e.g. 'learning 40%')."""
        if text != self.extra:
            self.extra = text
            self.refresh()

    def render(self) -> Text:
        text = self._tabs(compact=False)
        if self.extra and len(text) + len(self.extra) + 1 > self.size.width:
            text = self._tabs(compact=True)  # a narrow terminal keeps the status text visible
        pad = self.size.width - len(text) - len(self.extra) - 1
        if self.extra and pad > 0:
            text.append(" " * pad + self.extra, style="italic")
        return text

    def _tabs(self, compact: bool) -> Text:
        """The title and page tabs; `compact` drops the title and the padding around labels."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if not compact:
            text.append(f" {self.title} ", style="bold reverse")
        self._spans = []
        for mode, label in PAGES:
            start = len(text) + 1
            text.append(" ")
            text.append(label if compact else f" {label} ", style="bold reverse" if mode == self.current else "")
            self._spans.append((start, len(text), mode))
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, mode in self._spans:
            if start <= event.x < end:
                self.app.switch_mode(mode)
