"""How a scenario can end besides passing: a finding, or evidence that cannot be read.

- :class:`Finding` — the check ran and found something wrong. Its message names the rows
  (customer, voucher, amount …): it is what the controller reads in the report, the JUnit
  ``<failure>`` and the Cucumber JSON, so it is never just "assert False". An
  :class:`AssertionError`, so pytest reports it as a failure.
- :class:`NotVerified` — the evidence could not be read by this account (map state hidden,
  F&O refused a read). The scenario is neither passed nor failed: the plugin reports it as
  **not verified**, counts it apart, and the verdict of the run is then incomplete (exit 1).
  In pytest's terms it stays a failure, so no reader of the JUnit or Cucumber file can take it
  for a pass; its message starts with ``NOT VERIFIED:``.
"""

from __future__ import annotations

PASSED, FAILED, NOT_VERIFIED, ERROR, SKIPPED = "passed", "failed", "not verified", "error", "skipped"
NOT_VERIFIED_PREFIX = "NOT VERIFIED: "


class Finding(AssertionError):
    """A check found something wrong; the message names what, row by row."""


class NotVerified(Exception):
    """The evidence of a scenario cannot be read here; the scenario is not verified."""
