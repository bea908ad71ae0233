"""The core, one room a concern: config, signals, store, risk, jobs and the CLI.

Imports point down: cli -> jobs -> (playbooks, adapters) -> store | risk -> signals -> config.
"""
