"""Icons are SVG with a text name, never emoji: without an emoji font (many clinic PCs, Linux kiosks) an
emoji renders as an empty box, and a screen reader reads it out by its Unicode name."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u26ff\u2700-\u27bf]\ufe0f?")
# Text symbols our pages draw in their own font on purpose (not emoji presentation): the series mark and
# the warning triangle and the check mark of "Saved", each with a text name beside it or an aria-label.
ALLOWED = {"\u21bb", "\u26a0", "\u2713"}


def templates() -> list[Path]:
    base = Path(settings.BASE_DIR)
    return sorted(p for p in base.glob("*/templates/**/*.html") if ".venv" not in p.parts) + sorted(
        base.glob("templates/**/*.html")
    )


def test_no_template_draws_an_icon_with_an_emoji():
    found = [
        f"{path.relative_to(settings.BASE_DIR)}:{number}: {match.group()!r}"
        for path in templates()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in EMOJI.finditer(line)
        if match.group().rstrip("\ufe0f") not in ALLOWED
    ]
    assert len(templates()) > 30  # the scan sees the apps' templates
    assert found == []


def test_the_lock_and_group_icons_are_svg_files_the_css_masks_with():
    css = (Path(settings.BASE_DIR) / "static/css/calendar.css").read_text()
    for name in ("lock", "group"):
        assert f'.ico-{name} {{ mask-image: url("../img/{name}.svg")' in css
        assert (Path(settings.BASE_DIR) / f"static/img/{name}.svg").read_text().startswith("<svg")
