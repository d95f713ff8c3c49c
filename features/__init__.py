"""The Gherkin feature files that `cutover verify` runs and a finance controller signs.

Installed as ``cutover.features``; find them with ``importlib.resources.files("cutover.features")``
(see ``cutover.checks.feature_root``), so they are found the same way in a wheel and in a checkout.
"""
