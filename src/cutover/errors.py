"""One error root for the whole tool, and the exit code each kind of error means.

Every error the tool raises on purpose derives from :class:`CutoverError`. An error knows its
own exit code (a class attribute), so the CLI maps errors to exit codes in exactly one place by
reading ``exit_code``, and a wrong-environment error exits 3 because of what it is, not because
of where it happens to be caught.

    CutoverError                      2   the root; message, where (file, row, request, step), fix
    ├── UsageError                    2   the command line itself is wrong
    ├── InputError                    2   a file or value the user gave is wrong (path, extract, seed count)
    │   └── MoneyError (money)        2   a value that is not an exact amount of money
    ├── ConfigError  (profile)        2   cutover.toml or a profile is wrong: file, line, key
    ├── EnvironmentProblem            3   the environment could not be used as asked
    │   ├── SignInError  (signin)     3   the identity platform said no, or could not be reached
    │   ├── ServiceError (transport)  3   Dataverse or F&O answered with an error, or not at all
    │   │   └── …                         (read-only violation, 401, 403, 404, 400, 5xx, connection, outcome unknown)
    │   ├── WrongEnvironment          3   not the environment the profile means
    │   │   ├── FingerprintMismatch (config)      the organization is not the pinned one
    │   │   └── IdentityRoutingError (msal_http)  sign-in was sent to a host other than the identity platform
    │   ├── SimulatorStartError       3   the rehearsal simulator could not be started or reached
    │   └── WorkspaceProblem          3   the workspace cannot be read or written (permissions, full disk, busy)
    └── ChecksFailed                  1   the tool ran and found that something is not right

Exit codes: 0 ok, 1 checks failed, 2 bad input or usage, 3 environment or connection error,
4 the tool itself failed (an unexpected exception: a bug). A crash is never 1: a crashed
verification must not read as "balances changed".

Messages never carry a secret or a token: subclasses that embed service text pass it through
:mod:`cutover.redaction` first.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 4


class CutoverError(Exception):
    """An error the tool raises on purpose. ``str(error)`` is for people:
    ``<where>: <message>. Fix: <fix>`` (each part only when known)."""

    exit_code: ClassVar[int] = EXIT_USAGE

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.message = message
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text = f"{text.rstrip('. ')}. Fix: {self.fix}"
        return text

    def __str__(self) -> str:  # subclasses may change their parts after construction
        return self.render()


class UsageError(CutoverError):
    """The command line is wrong (an option missing, two that exclude each other)."""

    exit_code = EXIT_USAGE


class InputError(CutoverError):
    """A file or value the user supplied is wrong or unusable (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(CutoverError):
    """The environment (service, identity platform, simulator, workspace) could not be used (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class WrongEnvironment(EnvironmentProblem):
    """The environment answered with an organization other than the one the profile is pinned to."""


class SimulatorStartError(EnvironmentProblem):
    """The rehearsal simulator could not be started, or did not answer in time."""


class WorkspaceProblem(EnvironmentProblem):
    """The workspace (or another file the tool writes) cannot be used: permissions, full disk, busy."""


class ChecksFailed(CutoverError):
    """The tool did its work and found that something is not right (exit 1)."""

    exit_code = EXIT_CHECKS_FAILED


def exit_code_of(exc: BaseException) -> int:
    """The exit code a command ends with when ``exc`` escapes it."""
    if isinstance(exc, CutoverError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_ENVIRONMENT  # cancelled by the operator: nothing was judged
    return EXIT_INTERNAL
