"""Built-in `local` detectors: one module per check kind, each a pure function of the
evidence bytes returning the common `CheckResult`. They know nothing of Temporal."""
