"""CRM adapters behind one protocol, picked from config here and nowhere else."""

from __future__ import annotations

from adapters.protocol import CrmAdapter
from integration.config import Config
from integration.errors import ConfigError


def build_adapter(config: Config) -> CrmAdapter:
    """The adapter for `crm.kind`; config validation has already refused kinds not in this build."""
    if config.crm.kind == "sandbox":
        from adapters.sandbox.adapter import SandboxCrm

        return SandboxCrm.open(
            config.crm.sandbox.path,
            config.account_match.crm_field,
            seed_file=config.crm.sandbox.seed_file,
        )
    path, msg = "crm.kind", f"the {config.crm.kind} adapter is not part of this build yet"
    raise ConfigError(path, msg)
