"""What every page shares: the page bar on top, the key footer below."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerState

from pfs_tui.follow import READ_ONLY_REFUSED
from pfs_tui.widgets.nav_bar import NavBar


class PageScreen(Screen):
    """A page of the explorer; subclasses yield their body from `compose_body`."""

    PAGE = ""
    # Where the keys go when no field is being edited: focused when the page is shown and
    # when Escape leaves a field. Never an input, or page keys would be typed into it.
    AUTO_FOCUS = ""
    # A page with many keys of its own packs the footer (one space between keys, no ^p
    # palette hint: ^p still opens it) so that every key stays whole at 80 columns.
    COMPACT_FOOTER = False

    def compose(self) -> ComposeResult:
        yield NavBar(self.PAGE)
        yield from self.compose_body()
        yield Footer(compact=self.COMPACT_FOOTER, show_command_palette=not self.COMPACT_FOOTER)

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def session(self):
        return self.app.session

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (getattr(self.app, "follow", None) and action in READ_ONLY_REFUSED)

    def focus_home(self) -> None:
        """Give the keys back to the page: focus its AUTO_FOCUS widget (or nothing)."""
        home = next((w for w in self.query(self.AUTO_FOCUS) if w.focusable), None) if self.AUTO_FOCUS else None
        self.set_focus(home)

    def set_status(self, text: str) -> None:
        """Right-hand text in the page bar."""
        self.query_one(NavBar).set_extra(text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers run with exit_on_error=False so a failed job never kills the app;
        # the user still hears about it here.
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.group}: {event.worker.error}", severity="error", timeout=10, markup=False)
