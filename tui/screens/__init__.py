"""Full screens: the environment picker, the runbook, the help."""
