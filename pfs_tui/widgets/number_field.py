"""A labelled numeric input that validates as you type and nudges like a slider."""
from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static


def parse_number(text: str, minimum: float, maximum: float, integer: bool) -> tuple[float | int | None, str]:
    """(value, "") for acceptable text, else (None, why it is refused)."""
    text = text.strip()
    if not text:
        return None, "enter a number"
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        return None, "a whole number, please" if integer else "not a number"
    if value != value:  # NaN
        return None, "not a number"
    if value < minimum or value > maximum:
        return None, f"must be between {_fmt(minimum, integer)} and {_fmt(maximum, integer)}"
    return value, ""


def _fmt(value: float, integer: bool) -> str:
    return str(int(value)) if integer else f"{value:g}"


class NumberInput(Input):
    """The input part: +/- and up/down nudge the value instead of moving the cursor."""

    BINDINGS = [
        Binding("up", "nudge(1)", "More", id="field.more", key_display="↑/+"),
        Binding("down", "nudge(-1)", "Less", id="field.less", key_display="↓/-"),
        Binding("escape", "leave", "Leave field", id="field.leave", key_display="esc"),
    ]

    def action_leave(self) -> None:
        """Give the keys back to the page (its letter shortcuts are typed text in here)."""
        home = getattr(self.screen, "focus_home", None)
        if home is not None:
            home()
        else:
            self.screen.set_focus(None)

    def on_mount(self) -> None:
        # Snapshot tests switch blinking off app-wide so the cursor is always drawn.
        self.cursor_blink = getattr(self.app, "blink", True)

    async def _on_key(self, event: events.Key) -> None:
        # + and - are printable, so Input would insert them before any binding ran;
        # no setting is negative, so they are free to act as slider keys.
        if event.character in ("+", "=", "-"):
            event.stop()
            event.prevent_default()
            self.action_nudge(-1 if event.character == "-" else 1)
            return
        await super()._on_key(event)

    def action_nudge(self, direction: int) -> None:
        field = self.parent.parent
        if isinstance(field, NumberField):
            field.nudge(direction)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.action_nudge(1)

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.action_nudge(-1)


class SliderBar(Static):
    """A one-line gauge of where the value sits in its range; a click moves it one step."""

    def __init__(self, field: NumberField) -> None:
        super().__init__(classes="slider")
        self.field = field

    def render(self) -> str:
        width = max(4, self.size.width)
        f = self.field
        frac = (f.value - f.minimum) / ((f.maximum - f.minimum) or 1)
        filled = round(max(0.0, min(1.0, frac)) * width)
        return "━" * filled + "─" * (width - filled)

    def on_click(self, event: events.Click) -> None:
        """One step towards the click, as a scrollbar's track pages: on a wide range (retrain
        epochs 1-1000) setting the value under the pointer made one click a jump to 905."""
        f = self.field
        frac = event.x / max(1, self.size.width - 1)
        target = f.minimum + frac * (f.maximum - f.minimum)
        if abs(target - f.value) >= f.step / 2:
            f.nudge(1 if target > f.value else -1)


class NumberField(Widget):
    """Label, input, slider gauge and (when the text is refused) the reason why."""

    DEFAULT_CSS = """
    NumberField { height: auto; }
    NumberField Horizontal { height: 1; }
    NumberField Label { width: 15; }
    NumberField NumberInput { width: 10; }
    NumberField .slider { width: 1fr; color: $accent; margin-left: 1; }
    NumberField .error { color: $error; display: none; height: auto; padding-left: 15; }
    NumberField.-invalid .error { display: block; }
    NumberField.-invalid NumberInput { color: $error; }
    """

    class Changed(Message):
        """The field holds a new valid value."""

        def __init__(self, field: NumberField, value: float | int) -> None:
            super().__init__()
            self.field = field
            self.value = value

        @property
        def control(self) -> NumberField:
            return self.field

    class Refused(Message):
        """The text in the field is not an acceptable value (`why` says so)."""

        def __init__(self, field: NumberField, why: str) -> None:
            super().__init__()
            self.field = field
            self.why = why

        @property
        def control(self) -> NumberField:
            return self.field

    def __init__(self, label: str, value: float | int, *, minimum: float, maximum: float, step: float,
                 integer: bool = False, help: str = "", id: str | None = None) -> None:
        super().__init__(id=id)
        self.label, self.minimum, self.maximum, self.step = label, minimum, maximum, step
        self.integer, self.help = integer, help
        self.value = int(value) if integer else float(value)
        self.error = ""

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self.label)
            yield NumberInput(self._text(self.value), compact=True, tooltip=self.help,
                              id=f"{self.id}-input" if self.id else None)
            yield SliderBar(self)
        yield Static("", classes="error")

    def _text(self, value: float) -> str:
        return str(int(value)) if self.integer else f"{value:.4g}"

    @property
    def input(self) -> NumberInput:
        return self.query_one(NumberInput)

    def nudge(self, direction: int) -> None:
        """Move one step up or down (clamped), from the last valid value."""
        self.set_value(self.value + direction * self.step, snap=True)

    def set_value(self, value: float, *, snap: bool = False) -> None:
        """Set a value from code, a nudge or the mouse (clamped to the range)."""
        if snap:
            value = round(value / self.step) * self.step
        value = min(self.maximum, max(self.minimum, value))
        value = int(round(value)) if self.integer else round(float(value), 6)
        # Update at once (not when Input.Changed arrives), so fast repeated nudges add up.
        self._accept(value)
        self.input.value = self._text(value)

    def _accept(self, value: float | int) -> None:
        was_refused = bool(self.error)
        self.error = ""
        self.remove_class("-invalid")
        if value != self.value or was_refused:
            self.value = value
            self.query_one(SliderBar).refresh()
            self.post_message(self.Changed(self, value))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        value, why = parse_number(event.value, self.minimum, self.maximum, self.integer)
        self.query_one(".error", Static).update(f"{self.label}: {why}" if why else "")
        if value is None:
            self.error = why
            self.add_class("-invalid")
            self.post_message(self.Refused(self, why))
        else:
            self._accept(value)
