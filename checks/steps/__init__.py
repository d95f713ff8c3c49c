"""The step library: generic steps an accountant combines in ``.feature`` files.

Registered through :mod:`cutover.checks.plugin` (its ``pytest_plugins``); each module holds the
steps of one subject: :mod:`.milestones`, :mod:`.balances`, :mod:`.maps`.
"""
