"""The served page without the internet: textual-serve's page, its font from the server.

textual-serve's page template links Roboto Mono from fonts.googleapis.com, so a workshop
room without internet (or behind a strict proxy) waits on a request that never answers,
and every browser tells Google who attends. textual-serve already ships that font in its
static folder: the page served here loads it from there instead.
"""
from __future__ import annotations

import re
from pathlib import Path

WEB_FONT = re.compile(r'<link\s+rel="stylesheet"\s+href="https://fonts\.googleapis\.com/[^"]*"\s*/>')
LOCAL_FONT = ('<style>@font-face { font-family: "Roboto Mono"; '
              'src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf"); }</style>')
TEMPLATE = "app_index.html"


def offline_templates(folder: Path) -> Path:
    """Write textual-serve's page template, its web font replaced by the served one, into
    `folder`; that folder, for textual-serve's `templates_path`."""
    import textual_serve

    original = (Path(textual_serve.__file__).parent / "templates" / TEMPLATE).read_text(encoding="utf-8")
    page, found = WEB_FONT.subn(LOCAL_FONT, original)
    if not found:  # a textual-serve that links its fonts otherwise: say so instead of serving a web font
        raise RuntimeError(f"textual-serve's {TEMPLATE} no longer links Google Fonts as expected; "
                           "update pfs_tui/offline_page.py")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TEMPLATE).write_text(page, encoding="utf-8")
    return folder
