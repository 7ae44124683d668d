"""Per-layer bars: dense channels, channels the search keeps, and the uniform baseline."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from pfs_tui.widgets.keep_bars import ratio_bar


class ChannelBars(Widget):
    """One line per channel group: a bar of kept out of dense channels, with numbers.

    The bar's length is the dense width (relative to the widest group), the bright part
    the kept channels; `u` (and the cyan `│` on the bar) is what a uniform-width network of
    the same MACs keeps.
    """

    DEFAULT_CSS = """
    ChannelBars { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, int, int, int | None]] = []

    def show(self, dense: dict[str, int], kept: dict[str, int], uniform: dict[str, int] | None = None) -> None:
        """Draw these widths (group -> channels); uniform may be None."""
        self.rows = [(g, dense[g], kept.get(g, 0), (uniform or {}).get(g)) for g in dense]
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self.rows))

    def render(self) -> Text:
        if not self.rows:
            return Text("no structure yet", style="dim")
        name_w = min(16, max(len(r[0]) for r in self.rows))
        widest = max(r[1] for r in self.rows)
        num_w = len(str(widest))
        has_uniform = any(r[3] is not None for r in self.rows)
        # Numbers first, then the bar: they stay next to the name at any terminal width.
        head_w = name_w + 1 + 2 * num_w + 1 + (num_w + 2 if has_uniform else 0) + 1
        bar_w = max(4, self.size.width - head_w - 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, (group, dense, kept, uniform) in enumerate(self.rows):
            length = max(1, round(bar_w * dense / widest))
            text.append(f"{group[-name_w:]:>{name_w}} ")
            text.append(f"{kept:>{num_w}}/{dense:<{num_w}}", style="bold")
            if has_uniform:
                text.append(f" u{'' if uniform is None else uniform:<{num_w}}", style="cyan")
            text.append(" ")
            text.append_text(ratio_bar(kept / dense if dense else 0.0,
                                       None if uniform is None or not dense else uniform / dense,
                                       length, "bold green"))
            if i < len(self.rows) - 1:
                text.append("\n")
        return text
