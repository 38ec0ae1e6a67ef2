"""Pure decision logic and the versioned policy files (TOML) it reads.

`load_policy` reads one file (the only I/O here); `decide` is a pure function of the policy,
the checks, the sealing flags and the step-ups already done.
"""

from policies.engine import PERMISSIVENESS, decide, load_policy, parse_policy
from policies.model import Policy

__all__ = ["PERMISSIVENESS", "Policy", "decide", "load_policy", "parse_policy"]
