"""Orchestration that is not pure: between the handlers and the adapters."""
