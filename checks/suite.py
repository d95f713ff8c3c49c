"""The test module the validation suite runs: every scenario of the run's feature folders.

``cutover verify`` runs ``python -m pytest -p cutover.checks.plugin --pyargs
cutover.checks.suite --cutover-features DIR …``; pytest imports this module and
:func:`pytest_bdd.scenarios` binds each scenario of those folders to a test here. The folders
come from the plugin (``--cutover-features``), else the shipped ``cutover.features``. Imports
are absolute: in a checkout pytest may import this file under another name.
"""

from __future__ import annotations

import os

from pytest_bdd import scenarios

from cutover.checks.plugin import feature_folders

_folders = feature_folders()
scenarios(*(str(f) for f in _folders), features_base_dir=os.path.commonpath([str(f) for f in _folders]))
