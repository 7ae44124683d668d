"""A list of items marked with space, each row saying [x] or [ ] in plain text.

Textual's SelectionList shows marked and unmarked rows with the same glyph in two colours:
on a projector, or for a colour-blind viewer, they look alike. This one draws the mark
as text, and always has a highlighted row, so the first space marks something.
"""
from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList

MARKED, UNMARKED = "[x]", "[ ]"  # as wide as the button they replace: the gutter stays the same


class MarkList(SelectionList[str]):
    """SelectionList with [x] / [ ] marks and a highlight that survives refilling."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        if len(segments) < 4 or segments[1].text != Checkbox.BUTTON_INNER:
            return strip  # a wrapped prompt's second line: no button on it
        index = (segments[1].style.meta or {}).get("option") if segments[1].style else None
        if index is None:
            return strip
        marked = self.get_option_at_index(index).value in self.selected
        base = segments[3].style or Style()
        style = base + Style(bold=marked, meta={"option": index})  # the meta keeps a click toggling
        return Strip([Segment(MARKED if marked else UNMARKED, style), *segments[3:]])

    def refill(self, options: list[tuple[str, str, bool]]) -> None:
        """Replace the options (prompt, value, marked), keeping the highlighted value in view
        and always highlighting one row, so space marks without moving first."""
        keep = self.get_option_at_index(self.highlighted).value if self.highlighted is not None else None
        self.clear_options()
        for prompt, value, marked in options:
            self.add_option((prompt, value, marked))
        values = [value for _, value, _ in options]
        if values:
            self.highlighted = values.index(keep) if keep in values else 0
