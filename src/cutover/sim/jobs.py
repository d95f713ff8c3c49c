"""Long-running processes: invoice create and confirm in the background.

Microsoft documents (Project Operations, "Long-running jobs" / "Enable notifications for
long-running processes") that with the notifications setting on, "Create invoice" and
"Confirm an invoice" run in the background: the command returns at once and the records change
later. The rehearsal setting ``background_delay_s`` (0 = synchronous, the default) makes the
simulator do the same: the action validates what it can, answers at once, and records a job;
the statuses change when the job runs, ``background_delay_s`` seconds later.

A job is a row of ``sim_jobs`` written inside the action's own transaction, so a request (or a
``$batch`` change set) that fails leaves no job behind. Jobs run on the simulator's one
connection, on its event loop thread, never concurrently with a request (services answer
synchronously): a timer on the running loop wakes at the due time, and every API request first
runs the jobs that are due (so a job whose timer was lost with a restart still runs). A job
re-reads everything when it runs and holds nothing from the request; the dual-write effects of
a confirm happen when the job runs. A job that can no longer run (the contract has nothing
ready, the invoice is no longer a draft) is marked ``failed`` with the reason, changing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time

from . import invoices
from .errors import SimError
from .store import get_setting

SETTING = "background_delay_s"
MAX_DELAY_S = 3600.0
CREATE, CONFIRM = "create", "confirm"
logger = logging.getLogger("cutover.sim")
_savepoints = iter(range(1, 1 << 62))


def validate_delay(value: object) -> float:
    """The setting's value checked: a finite number of seconds, 0 ≤ value ≤ 3600."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{SETTING} must be a number of seconds, not {value!r}.")
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= MAX_DELAY_S:
        raise ValueError(f"{SETTING} must be a finite number of seconds from 0 to {MAX_DELAY_S:g}, not {value!r}.")
    return number


def delay(conn: sqlite3.Connection) -> float:
    return float(get_setting(conn, SETTING, 0) or 0)


def pending(conn: sqlite3.Connection, kind: str, target: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sim_jobs WHERE kind = ? AND target = ? AND state = 'pending'", (kind, target)
        ).fetchone()
        is not None
    )


def schedule(conn: sqlite3.Connection, kind: str, target: str) -> int:
    """Record a job due in ``background_delay_s`` and set a timer on the running loop."""
    wait = delay(conn)
    seq = conn.execute(
        "INSERT INTO sim_jobs(kind, target, due_at, state) VALUES (?, ?, ?, 'pending') RETURNING seq",
        (kind, target, time.time() + wait),
    ).fetchone()[0]
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop (a direct call): the next request runs it
        return seq
    loop.call_later(wait + 0.01, _wake, conn)
    return seq


def _wake(conn: sqlite3.Connection) -> None:
    try:
        run_due(conn)
    except sqlite3.ProgrammingError:  # the simulator was closed meanwhile
        pass
    except Exception:  # a timer must not take the loop down; the job stays pending
        logger.exception("simulator background job failed")


def run_due(conn: sqlite3.Connection) -> int:
    """Run every pending job that is due, oldest first; returns how many ran."""
    if conn.in_transaction:  # never inside someone else's transaction
        return 0
    due = conn.execute(
        "SELECT seq, kind, target FROM sim_jobs WHERE state = 'pending' AND due_at <= ? ORDER BY seq",
        (time.time() + 0.005,),
    ).fetchall()
    for seq, kind, target in due:
        name = f"job{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            if kind == CREATE:
                result = invoices.create_invoice(conn, target)
            else:
                invoices.confirm_invoice(conn, target)
                result = target
        except SimError as exc:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute("UPDATE sim_jobs SET state = 'failed', result = ? WHERE seq = ?", (exc.message, seq))
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute("UPDATE sim_jobs SET state = 'done', result = ? WHERE seq = ?", (result, seq))
        conn.execute(f"RELEASE {name}")
    return len(due)


def list_jobs(conn: sqlite3.Connection) -> list[dict]:
    return [
        {"seq": s, "kind": k, "target": t, "due_at": d, "state": st, "result": r}
        for s, k, t, d, st, r in conn.execute(
            "SELECT seq, kind, target, due_at, state, result FROM sim_jobs ORDER BY seq"
        )
    ]
