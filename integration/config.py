"""The admin's YAML config: schema, loading, and errors that name the YAML path.

The schema forbids unknown keys, because in a file an admin edits by hand a typo is an error, not a
default. Secrets never live in the file: it names environment variables and loading checks
they are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

CrmKind = Literal["sandbox", "hubspot", "salesforce"]
Priority = Literal["low", "medium", "high"]
# The CRMs whose adapter ships in this build; the others are accepted by the schema so the error
# can say plainly that the adapter is missing rather than that the word is wrong.
AVAILABLE_CRMS = frozenset({"sandbox", "hubspot"})
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SandboxCrm(_Strict):
    path: Path = Path("var/sandbox-crm.sqlite3")
    seed_file: Path | None = None


class HubSpotRateLimit(_Strict):
    """One budget shared by every worker through Redis (HubSpot counts per app)."""

    requests: int = Field(100, ge=1)
    per_seconds: int = Field(10, ge=1)
    search_per_second: int = Field(4, ge=1)


class HubSpotOAuth(_Strict):
    """An OAuth app install: the access token is refreshed from these and cached in Redis."""

    client_id_env: str = "HUBSPOT_CLIENT_ID"
    client_secret_env: str = "HUBSPOT_CLIENT_SECRET"  # noqa: S105 - a variable's name
    refresh_token_env: str = "HUBSPOT_REFRESH_TOKEN"  # noqa: S105 - a variable's name


class HubSpotWebhook(_Strict):
    client_secret_env: str = "HUBSPOT_CLIENT_SECRET"  # noqa: S105 - a variable's name
    # The exact URL HubSpot calls (scheme, host, path, query): the v3 signature covers it, and
    # behind a proxy the URL Flask sees is not the one HubSpot signed.
    public_url: str | None = None
    accept_legacy_signatures: bool = False


class HubSpotCrm(_Strict):
    # A private app's token; leave out (null) when `oauth` is used.
    access_token_env: str | None = "HUBSPOT_ACCESS_TOKEN"  # noqa: S105 - a variable's name
    oauth: HubSpotOAuth | None = None
    base_url: str = "https://api.hubapi.com"
    # When the account id property finds no company, search companies by this property instead.
    account_fallback_property: str | None = "domain"
    # A company property holding an owner id (e.g. the CSM) used when the company has no owner.
    owner_property: str | None = None
    property_group: str = "cs_playbooks"
    # A task property (created by `integration provision`) holding our idempotency key.
    task_key_property: str = "cs_playbook_key"
    # The contact property naming a person's buying role, and the values that mark a champion.
    champion_property: str | None = "hs_buying_role"
    champion_values: tuple[str, ...] = ("CHAMPION",)
    request_timeout_seconds: float = Field(10, gt=0, le=120)
    lookup_cache_seconds: int = Field(60, ge=0, le=3600)
    rate_limit: HubSpotRateLimit = HubSpotRateLimit()
    webhook: HubSpotWebhook | None = None


class CrmConfig(_Strict):
    kind: CrmKind = "sandbox"
    sandbox: SandboxCrm = SandboxCrm()
    hubspot: HubSpotCrm = HubSpotCrm()


class AccountMatch(_Strict):
    crm_field: str = Field(
        "product_account_id",
        description="HubSpot company property or Salesforce Account external-id field that "
        "holds the product's account id.",
        min_length=1,
    )


class FieldMap(_Strict):
    """CRM field that receives each computed value; null means do not write it."""

    risk_level: str | None = "churn_risk_level"
    risk_reasons: str | None = "churn_risk_reasons"
    usage_trend_pct: str | None = "usage_trend_pct"
    license_utilization_pct: str | None = "license_utilization_pct"
    last_active_date: str | None = "last_product_activity_date"


class Owners(_Strict):
    fallback_owner: str | None = None


class WebhookSource(_Strict):
    secret_env: str = Field(min_length=1)


class Webhooks(_Strict):
    # Names of environment variables, not secrets.
    usage: WebhookSource = WebhookSource(secret_env="USAGE_WEBHOOK_SECRET")  # noqa: S106
    job_changes: WebhookSource = WebhookSource(secret_env="JOB_CHANGES_WEBHOOK_SECRET")  # noqa: S106
    max_events_per_request: int = Field(1000, ge=1, le=10_000)


class UsageDropRule(_Strict):
    enabled: bool = True
    drop_pct: float = Field(40, gt=0, le=100)
    window_days: int = Field(7, ge=1, le=60)
    baseline_days: int = Field(28, ge=7, le=120)
    min_baseline_daily_users: float = Field(1.0, ge=0)
    small_account_max_users: float = Field(5, ge=0)
    small_account_window_days: int = Field(21, ge=1, le=60)

    @model_validator(mode="after")
    def _small_accounts_wait_longer(self) -> UsageDropRule:
        if self.small_account_window_days < self.window_days:
            msg = (
                f"small_account_window_days ({self.small_account_window_days}) must be at least "
                f"window_days ({self.window_days}): small accounts must stay down longer"
            )
            raise ValueError(msg)
        return self


class ChampionLeftRule(_Strict):
    enabled: bool = True
    champion_labels: tuple[str, ...] = ("champion",)
    remember_days: int = Field(90, ge=1, le=730)


class RiskConfig(_Strict):
    usage_drop: UsageDropRule = UsageDropRule()
    champion_left: ChampionLeftRule = ChampionLeftRule()


class PlaybookSettings(_Strict):
    """Per-playbook overrides of what the shipped definition says."""

    enabled: bool = True
    due_in_days: int | None = Field(None, ge=0, le=365)
    priority: Priority | None = None
    cooldown_days: int | None = Field(None, ge=0, le=365)
    # Enroll the signal's contact in this HubSpot sequence (or Salesforce cadence) as well.
    sequence_id: str | None = None


class Config(_Strict):
    crm: CrmConfig = CrmConfig()
    account_match: AccountMatch = AccountMatch()
    fields: FieldMap = FieldMap()
    owners: Owners = Owners()
    webhooks: Webhooks = Webhooks()
    risk: RiskConfig = RiskConfig()
    playbooks: dict[str, PlaybookSettings] = Field(default_factory=dict)

    _secrets: dict[str, str] = PrivateAttr(default_factory=dict)

    def secret(self, env_name: str) -> str:
        """The value of a secret the config names; loading has checked it is set."""
        return self._secrets[env_name]
