"""Typed events: small frozen dataclasses a consumer matches on, journal-able as plain data."""

from __future__ import annotations

import dataclasses

import pytest

from cutover.events import ChunkLoaded, Event, MigrationFinished, Notice, PhaseStarted, Progress, RecordFailed, as_dict


def test_events_are_frozen_and_typed():
    p = Progress(50, 200, throttled=3, failed=1, rate=25.0, eta=6.0)
    assert isinstance(p, Event) and p.fraction == 0.25
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.done = 60  # type: ignore[misc]
    assert Progress(0, 0).fraction == 1.0


def test_as_dict_names_the_event_and_keeps_every_field():
    failed = RecordFailed("id-1", 400, "0x80040203", "not a fixed-price line", "LEG-MS-0000007", 9, "x.csv")
    assert as_dict(failed) == {
        "event": "RecordFailed", "key": "id-1", "status": 400, "code": "0x80040203",
        "message": "not a fixed-price line", "legacy_id": "LEG-MS-0000007", "row": 9, "file": "x.csv",
    }  # fmt: skip
    assert as_dict(PhaseStarted("load"))["event"] == "PhaseStarted"
    assert as_dict(ChunkLoaded(5, 0, 5, 10, ("a",)))["ids"] == ("a",)
    assert as_dict(Notice("hello"))["level"] == "info"

    @dataclasses.dataclass(frozen=True)
    class Result:
        n: int

    assert as_dict(MigrationFinished(Result(3))) == {"event": "MigrationFinished", "outcome": {"n": 3}}
