"""cutover.demo: the demo world is seeded once, its profile made, and nothing of the user's is
ever replaced."""

from __future__ import annotations

import pytest

from cutover.config import Profile, load_config, update_config
from cutover.demo import DEMO_CUTOVER_DATE, prepare_demo
from cutover.errors import InputError, UsageError


def test_the_demo_world_is_seeded_once_with_its_profile(tmp_path):
    ws = tmp_path / "ws"
    first = prepare_demo(ws)
    assert first.seeded and first.db == ws / "rehearsal.sqlite" and first.extract == ws / "legacy-milestones.csv"
    assert first.extract.read_text(encoding="utf-8").startswith("legacy_id,")
    assert first.cutover_date == DEMO_CUTOVER_DATE
    profile = load_config(ws).get("rehearsal")
    assert profile.kind == "rehearsal" and profile.sim_db == "rehearsal.sqlite"
    stamp = first.db.stat().st_mtime_ns
    again = prepare_demo(ws)
    assert not again.seeded and again.db.stat().st_mtime_ns == stamp


def test_an_extract_that_is_not_the_demos_is_never_replaced(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "legacy-milestones.csv").write_text("mine\n", encoding="utf-8")
    with pytest.raises(InputError, match="not the demo's to replace"):
        prepare_demo(ws)
    assert (ws / "legacy-milestones.csv").read_text(encoding="utf-8") == "mine\n"
    assert not (ws / "rehearsal.sqlite").exists()


def test_a_profile_named_rehearsal_that_is_not_the_demos_is_refused(tmp_path):
    ws = tmp_path / "ws"
    prepare_demo(ws)
    update_config(ws, lambda c: c.add(Profile(name="rehearsal", kind="rehearsal", sim_db="other.sqlite"), replace=True))
    with pytest.raises(UsageError, match="not the demo's"):
        prepare_demo(ws)
    assert load_config(ws).get("rehearsal").sim_db == "other.sqlite"


def test_a_world_the_simulator_will_not_serve_is_left_alone_and_a_new_one_seeded_beside_it(tmp_path, seeded_template):
    """An older workspace's rehearsal.sqlite (seeded before worlds carried their marker): the demo
    never touches it; it seeds rehearsal-2.sqlite and points its own profile there."""
    import shutil
    import sqlite3

    from cutover.config import Profile, load_config, update_config
    from cutover.demo import prepare_demo

    ws = tmp_path / "ws"
    ws.mkdir()
    old = ws / "rehearsal.sqlite"
    shutil.copyfile(seeded_template, old)
    conn = sqlite3.connect(old)
    conn.execute("DROP TABLE sim_world")  # what a world seeded by an older cutover looks like
    conn.commit()
    conn.close()
    (ws / "legacy-milestones.csv").write_bytes(seeded_template.with_suffix(".csv").read_bytes())
    update_config(ws, lambda c: c.add(Profile(name="rehearsal", kind="rehearsal", sim_db="rehearsal.sqlite")))
    before = old.read_bytes()

    world = prepare_demo(ws)

    assert world.db == ws / "rehearsal-2.sqlite" and world.extract == ws / "legacy-milestones-2.csv" and world.seeded
    assert world.note and "rehearsal.sqlite cannot be served" in world.note and "older cutover" in world.note
    assert old.read_bytes() == before, "the older world is left exactly as it was"
    assert load_config(ws).get("rehearsal").sim_db_path(ws) == ws / "rehearsal-2.sqlite"
    again = prepare_demo(ws)  # the next day: the new world is kept
    assert again.db == world.db and not again.seeded and again.note is None
