"""The `integration` command, the demo, replay, report and the development Redis finder.

The top layer: may import anything below it (jobs, store, risk, adapters); nothing imports it.
"""
