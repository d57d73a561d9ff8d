"""Pure state machines and rules: no I/O, no clock, no randomness (ARCHITECTURE.md)."""
