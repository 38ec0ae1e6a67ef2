"""The shape `bench.twin` replays, loaded once per twin worker process (constant per run).

Its own module so the sandboxed twin workflow can import it passed through: the sandbox
re-imports workflow modules, and a dict defined in `bench.twin` itself would be empty.
Keys: "activities" (name, batch, input, output, in scheduling order), "status" (the
query answer) and "result" (the workflow's result).
"""

from __future__ import annotations

from typing import Any

SHAPE: dict[str, Any] = {}
