"""Z3 proofs of the model's invariants, run by `covalidator prove`."""
