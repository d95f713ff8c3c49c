"""pytest-bdd step library and fixtures behind `cutover verify` (the feature files in features/)."""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def feature_root() -> Iterator[Path]:
    """The shipped feature folder as a real directory, for as long as the context lasts.

    Found through :mod:`importlib.resources`, so it works from a wheel, a zip or a checkout."""
    with importlib.resources.as_file(importlib.resources.files("cutover.features")) as path:
        yield Path(path)
