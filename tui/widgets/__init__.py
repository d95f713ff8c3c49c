"""Widgets of the runbook screen: the step list, the step detail, the progress panel."""
