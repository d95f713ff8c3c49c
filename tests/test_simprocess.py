"""Starting the rehearsal simulator for a command: a child process, off the event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from cutover.config import Profile
from cutover.errors import SimulatorStartError
from cutover.session import open_session
from cutover.sim.seed import organization_id
from cutover.simprocess import SimulatorProcess, is_alive


def test_the_simulator_serves_the_database_and_stops(world_db):
    """It serves the named database on a loopback port; afterwards the process and port are gone."""
    simulator = SimulatorProcess(world_db)
    with simulator as url:
        assert url.startswith("http://127.0.0.1:")
        pid = simulator.pid
        summary = httpx.get(f"{url}/_sim/", headers=simulator.admin_headers()).json()
        assert summary["organization_id"] == organization_id(1)
    assert not is_alive(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_sim/", timeout=2)


def test_a_second_command_connects_to_the_serving_simulator_instead_of_starting_another(world_db):
    """One simulator per database: the second one attaches, and leaves the first running."""
    first = SimulatorProcess(world_db)
    with first as url:
        second = SimulatorProcess(world_db)
        with second as again:
            assert again == url and second.attached and second.pid is None
            assert second.admin_token == first.admin_token
        assert first.running and httpx.get(f"{url}/_sim/", headers=first.admin_headers()).status_code == 200
    assert not is_alive(first.pid)


def test_a_missing_database_names_the_command_that_creates_it(tmp_path):
    with pytest.raises(SimulatorStartError, match=r"does not exist\. Fix: create it with: cutover sim seed --db "):
        with SimulatorProcess(tmp_path / "nope.sqlite"):
            pass


def test_a_simulator_that_cannot_start_says_why(tmp_path):
    """A file that is not a simulator database: the child's own last words are in the error."""
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("this is not a database\n")
    with pytest.raises(SimulatorStartError, match="did not start") as caught:
        with SimulatorProcess(bogus, timeout=20):
            pass
    assert str(bogus) in str(caught.value)


async def test_opening_an_environment_keeps_the_event_loop_responsive(world_db, tmp_path):
    """A ticker keeps ticking while the embedded simulator starts (a TUI would keep drawing)."""
    profile = Profile(name="rehearsal", kind="rehearsal", sim_db=str(world_db))
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    async with open_session(profile, tmp_path, read_only=True) as session:
        opened = time.perf_counter() - started
        who = await session.whoami()
    stop.set()
    await task
    assert who["OrganizationId"].lower() == organization_id(1)
    assert opened > 0.2, "the simulator took no time to start: the test proves nothing"
    assert len(gaps) >= opened / 0.05, f"{len(gaps)} ticks in {opened:.2f} s"
    assert max(gaps) < 0.25, f"the event loop froze for {max(gaps) * 1000:.0f} ms"


async def test_cancelling_the_start_leaves_no_simulator_running(world_db):
    simulator = SimulatorProcess(world_db)
    task = asyncio.create_task(simulator.__aenter__())
    for _ in range(200):  # wait until the child exists, then cancel while it starts
        if simulator.pid:
            break
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = simulator.pid
    assert pid is not None
    for _ in range(100):
        if not is_alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not is_alive(pid)
    simulator.stop()


def test_the_child_is_the_simulators_own_entry_point(world_db: Path):
    assert SimulatorProcess(world_db).command()[1:4] == ["-m", "cutover.sim", "serve"]


def test_another_spelling_of_the_database_path_finds_the_serving_simulator(world_db, tmp_path):
    link = tmp_path / "link.sqlite"
    link.symlink_to(world_db)
    first = SimulatorProcess(world_db)
    with first as url:
        second = SimulatorProcess(link)
        with second as again:
            assert second.attached and again == url
