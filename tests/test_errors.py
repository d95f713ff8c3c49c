"""One error root, one place that maps errors to exit codes (README: exit codes).

The CLI tests drive the real `cutover` group; to make a command fail in a chosen way they
replace the one core call the command makes (`load_config`) with one that raises."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cutover import config, errors
from cutover.cli import main


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.UsageError("x"), 2),
        (errors.InputError("x"), 2),
        (config.ConfigError("x"), 2),
        (errors.EnvironmentProblem("x"), 3),
        (errors.WrongEnvironment("x"), 3),
        (errors.SimulatorStartError("x"), 3),
        (errors.WorkspaceProblem("x"), 3),
        (errors.ChecksFailed("x"), 1),
        (RuntimeError("x"), 4),
        (KeyError("x"), 4),
    ],
)
def test_each_error_knows_its_exit_code(error, code):
    assert errors.exit_code_of(error) == code


def test_the_wrong_environment_error_is_an_environment_error_wherever_it_is_caught():
    from cutover.config import FingerprintMismatch

    mismatch = FingerprintMismatch("organization differs", profile="night", key="pinned_org_id")
    assert isinstance(mismatch, errors.WrongEnvironment) and not isinstance(mismatch, config.ConfigError)
    assert mismatch.exit_code == 3


def test_every_service_and_sign_in_error_derives_from_the_root():
    from cutover.auth import SignInError
    from cutover.money import MoneyError
    from cutover.transport import OutcomeUnknown, ReadOnlyViolation, ServiceError

    for cls, code in (
        (ServiceError, 3),
        (ReadOnlyViolation, 3),
        (OutcomeUnknown, 3),
        (SignInError, 3),
        (MoneyError, 2),
    ):
        assert issubclass(cls, errors.CutoverError) and cls.exit_code == code, cls


def test_a_message_names_where_and_the_fix():
    err = errors.InputError(
        "amount has three decimals", where="extract.csv row 7, column amount", fix="round it in the legacy system"
    )
    assert str(err) == "extract.csv row 7, column amount: amount has three decimals. Fix: round it in the legacy system"


def _failing(monkeypatch, exc: BaseException) -> None:
    def load_config(workspace):
        raise exc

    monkeypatch.setattr(config, "load_config", load_config)


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (errors.InputError("the extract is empty", where="legacy.csv"), 2, "error: legacy.csv: the extract is empty"),
        (errors.WrongEnvironment("organization 1 is not 2"), 3, "error: organization 1 is not 2"),
        (errors.ChecksFailed("3 balances changed"), 1, "error: 3 balances changed"),
        (KeyboardInterrupt(), 3, "cancelled"),
        (PermissionError(13, "Permission denied", "/ws/cutover.toml"), 3, "Permission denied (/ws/cutover.toml)"),
    ],
)
def test_the_cli_maps_errors_to_exit_codes_in_one_place(monkeypatch, tmp_path: Path, exc, code, text):
    _failing(monkeypatch, exc)
    result = CliRunner().invoke(main, ["env", "list", "--workspace", str(tmp_path)])
    assert result.exit_code == code, result.output
    assert text in result.output
    assert "Traceback" not in result.output


def test_an_unexpected_exception_exits_4_with_one_line_and_a_traceback_log(monkeypatch, tmp_path: Path):
    _failing(monkeypatch, ZeroDivisionError("division by zero"))
    result = CliRunner().invoke(main, ["env", "list", "--workspace", str(tmp_path)])
    assert result.exit_code == 4, "a crash is never 1 (checks failed) nor 0"
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError: division by zero; details in ")
    log = Path(lines[0].rsplit("details in ", 1)[1])
    assert log.parent == tmp_path / "logs"
    assert "ZeroDivisionError" in log.read_text() and "Traceback" in log.read_text()
    assert "Traceback" not in result.output
