"""The admin's YAML config (schema, loading with path-precise errors) and the process settings.

Imports only the standard library, pydantic, PyYAML and integration.errors.
"""
