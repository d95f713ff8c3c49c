"""Text snapshots of screens (and an SVG beside each for people to look at).

pytest-textual-snapshot pins syrupy 4.8, which requires pytest < 9, so it does not install
beside this project's pytest 9: the comparison here is of the screen's text — what the
operator reads — at a given terminal size. ``CUTOVER_UPDATE_SNAPSHOTS=1`` rewrites them."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from .helpers import screen_text

FOLDER = Path(__file__).parent / "snapshots"
CLOCK = re.compile(r"\b\d\d:\d\d:\d\d\b")
STAMP_DATE = re.compile(r"\b\d{4}-\d\d-\d\d(?= hh:mm:ss)")  # the day part of a clock time (the day the test ran)
DIGEST = re.compile(r"\b[0-9a-f]{12,64}\b")  # SHA-256 of packs whose files carry the time they were made
UPDATE = os.environ.get("CUTOVER_UPDATE_SNAPSHOTS") == "1"


def assert_snapshot(app, name: str) -> None:
    width, height = app.size
    stem = f"{name}_{width}x{height}"
    text = "\n".join(line.rstrip() for line in screen_text(app).splitlines()) + "\n"
    text = CLOCK.sub("hh:mm:ss", text)  # journal times change from run to run
    text = STAMP_DATE.sub("yyyy-mm-dd", text)
    text = DIGEST.sub(lambda m: "#" * len(m.group()), text)
    path = FOLDER / f"{stem}.txt"
    if UPDATE or not path.exists():
        FOLDER.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        (FOLDER / f"{stem}.svg").write_text(app.export_screenshot(title=f"cutover — {name}"), encoding="utf-8")
        if not UPDATE:
            raise AssertionError(f"new snapshot {path.name} written; look at it (and its .svg), then run again")
        return
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "expected", "now"))
        raise AssertionError(f"{path.name} differs (CUTOVER_UPDATE_SNAPSHOTS=1 to accept):\n{diff}")
