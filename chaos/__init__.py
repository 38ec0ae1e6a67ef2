"""The chaos run (issue 6): sessions through the embedded stack while faults are injected,
then the invariants that must hold whatever happened. `make chaos`; a small version runs
in CI as `tests/chaos/test_chaos_small.py`."""
