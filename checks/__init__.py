"""pytest-bdd step library and fixtures behind `cutover verify` (features/)."""
