"""All that knows Redis key names and Lua: rollups, keys, layout, imports, unmatched, counters.

Imports integration.signals, integration.config and redis; nothing above (risk, jobs, CLI).
"""
