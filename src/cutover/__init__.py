"""cutover: migrate invoiced fixed-price billing milestones into Project Operations, and prove it."""

__version__ = "0.1.0"
