"""All that knows Redis key names and Lua: rollups, keys, layout, imports, unmatched, counters.

Imports integration.signals, integration.config, redis and prometheus_client; not risk (a
sibling), jobs or the CLI.
"""
