"""The bundled vendor sandbox: a test and demo tool that speaks the generic vendor API
(`signgate.vendor_api`) with deterministic, scenario-picked answers and signed webhooks.

It analyses nothing. Never point a production deployment at it.
"""

from signgate.sandbox.app import create_sandbox_app
from signgate.sandbox.serve import run_sandbox

__all__ = ["create_sandbox_app", "run_sandbox"]
