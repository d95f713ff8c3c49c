"""The `cutover` command. Thin: parse arguments, call the core, print, set the exit code.

Errors are mapped to exit codes in one place (:class:`CutoverGroup`), by reading the error's
own ``exit_code`` (:mod:`cutover.errors`): 0 ok, 1 checks failed, 2 bad input or usage,
3 environment or connection error, 4 the tool itself failed — then the traceback goes to a
log file in the workspace and the message names it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import click

from cutover import config as configuration
from cutover.errors import EXIT_ENVIRONMENT, EXIT_INTERNAL, CutoverError, exit_code_of

DEMO_DB = "rehearsal.sqlite"
_WORKSPACE_KEY = "cutover.workspace"


# --- one error path ---------------------------------------------------------------------------------


def _crash_log(ctx: click.Context, exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected exception; the workspace's logs/ if it exists, else temp."""
    workspace = ctx.meta.get(_WORKSPACE_KEY) or configuration.resolve_workspace(None)
    folder = Path(workspace) / "logs" if Path(workspace).is_dir() else Path(tempfile.gettempdir())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"cutover-crash-{stamp}-{os.getpid()}.log"
        with open(path, "x", encoding="utf-8") as f:
            f.write(f"cutover {' '.join(sys.argv[1:])}\n")
            f.write("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


class CutoverGroup(click.Group):
    """The top-level group: the one place where errors become messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CutoverError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("cancelled", err=True)
            ctx.exit(exit_code_of(KeyboardInterrupt()))
        except OSError as exc:  # the workspace itself: folders, permissions, a full disk
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(
                f"error: {exc.strerror or exc}{where}: check the folder's ownership, permissions and free space",
                err=True,
            )
            ctx.exit(EXIT_ENVIRONMENT)
        except Exception as exc:
            log = _crash_log(ctx, exc)
            where = f"; details in {log}" if log else ""
            click.echo(f"internal error: {type(exc).__name__}: {exc}{where}", err=True)
            ctx.exit(EXIT_INTERNAL)


def _remember_workspace(ctx: click.Context, _param, value):
    if value is not None:
        ctx.meta[_WORKSPACE_KEY] = configuration.resolve_workspace(value)
    return value


workspace_option = click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_remember_workspace,
    help=f"Workspace folder [default: ${configuration.WORKSPACE_ENV} or ./{configuration.DEFAULT_WORKSPACE}].",
)

#: The environment a command acts on: ``--env NAME``, default ``$CUTOVER_ENV``. Every command
#: that acts on an environment takes it (``@env_option``; the value arrives as ``env_name``).
ENV_VAR = "CUTOVER_ENV"
env_option = click.option(
    "--env",
    "env_name",
    envvar=ENV_VAR,
    required=True,
    metavar="NAME",
    help=f"Environment profile to act on [default: ${ENV_VAR}].",
)


def source_option(*, required: bool = False, help: str = "The legacy extract (CSV, XLSX, Parquet)."):
    """``--source FILE``: the one spelling every command that reads the extract uses."""
    return click.option(
        "--source", type=click.Path(dir_okay=False, path_type=Path), required=required, default=None, help=help
    )


def mapping_option(*, help: str = "Mapping file for the extract's dialect (TOML)."):
    return click.option(
        "--mapping", "mapping_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help
    )


def cutover_date_option(*, help: str = "Rows dated after it are refused [default: today, UTC]."):
    return click.option("--cutover-date", default=None, metavar="YYYY-MM-DD", help=help)


def run_async(coro):
    """Run one async command to completion on a fresh event loop."""
    return asyncio.run(coro)


def _interrupt(signum, _frame) -> None:
    """SIGTERM and SIGHUP (the SSH connection dropped) take the path of Ctrl+C, so every
    `with`/`async with` unwinds: a simulator this command started is stopped, files are closed."""
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process at once
    os.kill(os.getpid(), signal.SIGINT)


@click.group(cls=CutoverGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cutover")
def main() -> None:
    """Migrate invoiced fixed-price billing milestones into Project Operations without touching AR or GL, and prove it."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) in (signal.SIG_DFL, None):
            signal.signal(signum, _interrupt)


# --- shared by the command groups ---------------------------------------------------------------

# TOML key -> command-line option, so a validation message points at what the operator typed.
OPTION_OF_KEY = {
    "kind": "--kind", "dataverse_url": "--dataverse-url", "fno_url": "--fno-url", "tenant": "--tenant",
    "client_id": "--client-id", "auth": "--auth", "secret_env": "--secret-env", "cert_path": "--cert",
    "sim_db": "--sim-db", "identities": "--identity", "keyring_service": "--keyring-service",
    "keyring_username": "--keyring-username", "invoice_create_action": "--invoice-create-action",
    "invoice_confirm_action": "--invoice-confirm-action",
}  # fmt: skip


def _with_option_hint(exc: configuration.ConfigError) -> configuration.ConfigError:
    """Name the command-line option when a profile value typed on the command line is wrong."""
    if exc.key in OPTION_OF_KEY and exc.line is None:
        exc.message = f"{exc.message} (option {OPTION_OF_KEY[exc.key]})"
    return exc


def _load(workspace: Path | None) -> tuple[Path, configuration.Config]:
    ws = configuration.resolve_workspace(workspace)
    return ws, configuration.load_config(ws)


def _profile(workspace: Path | None, name: str):
    ws, config = _load(workspace)
    return ws, config.get(name)


def _show_code(message: str, user_code: str, verification_uri: str) -> None:
    click.echo(f"\n{message}\n(waiting for you to sign in; Ctrl+C cancels)\n", err=True)


# The command groups register themselves on `main` when imported.
from . import env_commands, migrate_commands, report_commands, runbook_commands, sim_commands  # noqa: E402, F401
