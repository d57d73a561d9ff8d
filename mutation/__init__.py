"""Mutation testing: the fixed set of planted bugs CI runs, and `make mutants` (cosmic-ray)."""
