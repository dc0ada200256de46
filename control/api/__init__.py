"""Operator-facing HTTP API (Flask). Errors are RFC 9457 problem details, never tracebacks."""

from control.api.app import create_app

__all__ = ["create_app"]
