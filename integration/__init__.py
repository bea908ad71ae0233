"""The core: config, signals, rollups, risk rules, jobs and the CLI."""
