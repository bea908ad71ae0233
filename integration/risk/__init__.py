"""Pure risk rules, one module per family of signal, baselines, reasons, `assess`, field values.

Imports integration.config and integration.signals only: no I/O, no Redis, no CRM.
"""
