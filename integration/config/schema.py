"""The admin's YAML config: schema, loading, and errors that name the YAML path.

The schema forbids unknown keys, because in a file an admin edits by hand a typo is an error, not a
default. Secrets never live in the file: it names environment variables and loading checks
they are set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from integration.config.channels import Channels
from integration.config.playbooks import PlaybookEntry, Work

CrmKind = Literal["sandbox", "hubspot", "salesforce"]
# Days of daily history kept per metric (the rollup ring): a year for seasonal comparisons,
# plus the longest window and the normal's lookback.
HISTORY_DAYS_KEPT = 448
YEAR_DAYS = 364
# Last year's same weeks are a season when they moved against the weeks before them.
SEASON_LOOKBACK_WEEKS = 8
Priority = Literal["low", "medium", "high"]
# The CRMs whose adapter ships in this build; the others are accepted by the schema so the error
# can say plainly that the adapter is missing rather than that the word is wrong.
AVAILABLE_CRMS = frozenset({"sandbox", "hubspot", "salesforce"})
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


# A CRM field's API name (HubSpot property or Salesforce field): these end up in SOQL, so nothing
# but letters, digits and underscores.
ApiName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=100)]


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
    portal_id: str | None = None  # the hub id, for links to records (app.hubspot.com/...)
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


SOAP_LOGIN_LAST_VERSION = 64.0


class SalesforceAuth(_Strict):
    """How we log in. JWT bearer or client credentials for a service; the password flow uses the
    SOAP login() that Salesforce retires in Summer '27 (off by default in orgs from Winter '26)."""

    flow: Literal["jwt", "client_credentials", "password"] = "jwt"
    # Login host prefix: "login", "test" (sandboxes) or "<MyDomain>.my" (required for
    # client credentials).
    domain: str = "login"
    username_env: str = "SALESFORCE_USERNAME"
    consumer_key_env: str = "SALESFORCE_CONSUMER_KEY"
    private_key_env: str = "SALESFORCE_PRIVATE_KEY"  # PEM text (jwt)
    consumer_secret_env: str = "SALESFORCE_CONSUMER_SECRET"  # noqa: S105 - a variable's name
    password_env: str = "SALESFORCE_PASSWORD"  # noqa: S105 - a variable's name
    security_token_env: str = "SALESFORCE_SECURITY_TOKEN"  # noqa: S105 - a variable's name

    def secret_envs(self) -> dict[str, str]:
        """The variables this flow needs, by key name."""
        wanted = {
            "jwt": ("username_env", "consumer_key_env", "private_key_env"),
            "client_credentials": ("consumer_key_env", "consumer_secret_env"),
            "password": ("username_env", "password_env", "security_token_env"),
        }[self.flow]
        return {key: getattr(self, key) for key in wanted}


class SalesforceOutbound(_Strict):
    # Outbound messages carry no signature: we only take those from this org (15 or 18 characters).
    organization_id: str = Field(min_length=15, max_length=18)
    # A shared secret Salesforce puts in the endpoint URL (?token=...), the one way to add one.
    token_env: str | None = None
    # A Contact field the sending Flow fills with $Record__Prior.AccountId, so that even the first
    # message about a contact shows which account they left (messages carry current values only).
    prior_account_field: ApiName | None = None


class SalesforceCrm(_Strict):
    auth: SalesforceAuth = SalesforceAuth()
    api_version: str = Field("62.0", pattern=r"^\d{2}\.0$")
    # Where a people signal's company domain is looked up on Account.
    account_domain_field: ApiName = "Website"
    # An Account lookup to a User (e.g. CSM__c) used when the Account's OwnerId is not wanted.
    owner_field: ApiName | None = None
    # A Contact checkbox or picklist marking champions, and the values that count.
    champion_field: ApiName | None = None
    champion_values: tuple[str, ...] = ("true", "Champion")
    # A Task text field (Text 40) holding our idempotency key: a create that timed out is looked
    # up by it before being sent again, so a rep never sees the same task twice.
    task_key_field: ApiName = "Playbook_Key__c"
    # DeveloperName of the CustomNotificationType for owner notifications.
    notification_type: str | None = None
    # Stop non-urgent writes (field updates) once this share of the daily API allocation is used.
    api_budget_share: float = Field(0.8, gt=0, le=1)
    request_timeout_seconds: float = Field(30, gt=0, le=600)
    outbound: SalesforceOutbound | None = None

    @model_validator(mode="after")
    def _password_flow_needs_an_old_api(self) -> SalesforceCrm:
        # SOAP login() is not available in API 65.0 and later (reference/salesforce.md 1).
        if self.auth.flow == "password" and float(self.api_version) >= SOAP_LOGIN_LAST_VERSION + 1:
            msg = (
                f"the password flow logs in with SOAP login(), which API {self.api_version} no "
                "longer has: use auth.flow jwt or client_credentials, or api_version 64.0"
            )
            raise ValueError(msg)
        return self


class CrmConfig(_Strict):
    kind: CrmKind = "sandbox"
    sandbox: SandboxCrm = SandboxCrm()
    hubspot: HubSpotCrm = HubSpotCrm()
    salesforce: SalesforceCrm = SalesforceCrm()


class AccountMatch(_Strict):
    crm_field: ApiName = Field(
        "product_account_id",
        description="HubSpot company property or Salesforce Account external-id field that "
        "holds the product's account id.",
        min_length=1,
    )


class FieldMap(_Strict):
    """CRM field that receives each computed value; null means do not write it."""

    risk_level: ApiName | None = "churn_risk_level"
    risk_reasons: ApiName | None = "churn_risk_reasons"
    usage_trend_pct: ApiName | None = "usage_trend_pct"
    license_utilization_pct: ApiName | None = "license_utilization_pct"
    last_active_date: ApiName | None = "last_product_activity_date"


MetricName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
BUILT_IN_METRICS = (
    "active_users",
    "events",
    "logins",
    "nps_responses",
    "nps_detractors",
    "tickets_opened",
    "csat_responses",
    "csat_satisfied",
)


class Metrics(_Strict):
    """What is counted per account and day besides distinct active users and all events."""

    # Event names that count as a login.
    login_events: tuple[str, ...] = ("login", "signed_in", "sign_in", "logged_in")
    # Voice of customer: NPS responses arrive as usage events with a score property; a score of
    # 6 or less is a detractor (counted as nps_responses / nps_detractors).
    nps_events: tuple[str, ...] = ("nps_submitted", "nps_response")
    nps_score_property: str = "score"
    # CSAT responses: a score property on a 1-5 scale, satisfied at 4 or more (counted as
    # csat_responses / csat_satisfied).
    csat_events: tuple[str, ...] = ("csat_submitted", "csat_response")
    csat_score_property: str = "score"
    csat_satisfied_min: float = Field(4, gt=0)
    # Support tickets opened, counted as tickets_opened. With a ticket id property, each ticket
    # stays open until a closing event names it, so long-open tickets can be told.
    ticket_opened_events: tuple[str, ...] = ("ticket_opened", "support_ticket_created")
    ticket_closed_events: tuple[str, ...] = ("ticket_closed", "support_ticket_closed")
    ticket_id_property: str = "ticket_id"
    # Further daily counters: metric name -> the event names that count toward it, e.g.
    # reports_created: [report_created]. A bulk import's extra columns land in these too.
    counted: dict[MetricName, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_built_in_names(self) -> Metrics:
        taken = sorted(set(self.counted) & set(BUILT_IN_METRICS))
        if taken:
            msg = f"{', '.join(taken)} are built in; give counted metrics other names"
            raise ValueError(msg)
        return self

    def names(self) -> tuple[str, ...]:
        return (*BUILT_IN_METRICS, *self.counted)


class AccountFacts(_Strict):
    """CRM fields read back with each account (HubSpot company properties, Salesforce Account
    fields): the CRM owns the renewal date and the segment, so rules use its values."""

    renewal_date: ApiName | None = None
    segment: ApiName | None = None  # e.g. an ARR tier; selects risk.segments overrides
    plan: ApiName | None = None
    # Licenses purchased: when mapped and set, it wins over the seats usage events report.
    seats: ApiName | None = None
    # When onboarding began (a date); without it, the first day of usage.
    onboarding_start: ApiName | None = None
    # Lookups to a CRM user holding the account's CSM and AE: playbook tasks can go to either.
    csm: ApiName | None = None
    ae: ApiName | None = None
    # A field saying how the renewal went (an opportunity stage or a status picklist): its
    # values are read as renewed or churned by `outcomes` below, for `integration report`.
    renewal_status: ApiName | None = None
    # Any other field playbook conditions and templates may read, by the name they use,
    # e.g. industry: Industry.
    extra: dict[MetricName, ApiName] = Field(default_factory=dict)

    def crm_fields(self) -> dict[str, str]:
        named = {
            name: field for name, field in self.model_dump().items() if field and name != "extra"
        }
        return {**named, **self.extra}

    def names(self) -> frozenset[str]:
        """The fact names an account may carry (whether mapped or not)."""
        own = frozenset(name for name in type(self).model_fields if name != "extra")
        return own | set(self.extra)


class Owners(_Strict):
    # Who gets work when the person a playbook names is missing (no owner, no CSM mapped).
    fallback_owner: str | None = None
    # Managers by CRM user id, for CRMs that do not know them (HubSpot); Salesforce's
    # User.ManagerId wins where it is set.
    managers: dict[str, str] = Field(default_factory=dict)


class WebhookSource(_Strict):
    secret_env: str = Field(min_length=1)


class SegmentSource(_Strict):
    """Segment's Webhooks destination (classic or Actions)."""

    # Set the same shared secret in Segment; without one, deliveries are not authenticated.
    shared_secret_env: str | None = None
    # Where the product account id sits when a message has no context.groupId, looked up in
    # properties, then traits, then context.traits (dots reach into objects).
    account_path: str = "company.id"


class Webhooks(_Strict):
    # Names of environment variables, not secrets.
    usage: WebhookSource = WebhookSource(secret_env="USAGE_WEBHOOK_SECRET")  # noqa: S106
    job_changes: WebhookSource = WebhookSource(secret_env="JOB_CHANGES_WEBHOOK_SECRET")  # noqa: S106
    segment: SegmentSource | None = None
    max_events_per_request: int = Field(1000, ge=1, le=10_000)


class UsageDropRule(_Strict):
    enabled: bool = True
    drop_pct: float = Field(40, gt=0, le=100)
    window_days: int = Field(7, ge=1, le=60)
    # The normal is a block of this many days (whole weeks, weekday by weekday)...
    baseline_days: int = Field(28, ge=7, le=112, multiple_of=7)
    # ...the highest such block within this many weeks before the window, so a decline that
    # began weeks ago is measured against the level before it.
    lookback_weeks: int = Field(8, ge=1, le=16)
    # Compare with the same weeks last year: "auto" when last year also dipped then (needs a
    # year of history), "yes" for products known to be seasonal, "no" never.
    seasonal: Literal["auto", "yes", "no"] = "auto"
    min_baseline_daily_users: float = Field(1.0, ge=0)
    # The shortfall must also exceed this many standard deviations of count noise (the square
    # root of the expected total), so a quiet account's random low week is not a flag.
    min_significance_z: float = Field(3.0, ge=0, le=10)
    small_account_max_users: float = Field(5, ge=0)
    small_account_window_days: int = Field(21, ge=1, le=60)
    # Once flagged, the account is measured against the level before the drop, and the flag
    # clears only when the last `recover_days` days reach this share of that level.
    recover_pct: float = Field(85, gt=0, le=100)
    recover_days: int = Field(7, ge=1, le=60)
    # It also clears once usage has settled at a level that is no drop: every window of the
    # last `settled_days` days short of that level by less than `drop_pct`, beyond count noise.
    settled_days: int = Field(28, ge=7, le=182)

    def history_days(self) -> int:
        """Days of history this rule reads."""
        year = YEAR_DAYS if self.seasonal != "no" else 0
        return (
            year + max(self.window_days, self.small_account_window_days) + (self.lookback_weeks * 7)
        )

    @model_validator(mode="after")
    def _fits_the_history_kept(self) -> UsageDropRule:
        if self.history_days() > HISTORY_DAYS_KEPT:
            msg = (
                f"these settings read {self.history_days()} days of history but "
                f"{HISTORY_DAYS_KEPT} are kept: shorten window_days or lookback_weeks, "
                "or set seasonal: no"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _small_accounts_wait_longer(self) -> UsageDropRule:
        if self.small_account_window_days < self.window_days:
            msg = (
                f"small_account_window_days ({self.small_account_window_days}) must be at least "
                f"window_days ({self.window_days}): small accounts must stay down longer"
            )
            raise ValueError(msg)
        return self


class SlowDeclineRule(_Strict):
    """A long, steady fall: the recent weeks against the level a quarter ago."""

    enabled: bool = True
    # The recent block of whole weeks (so weekdays weigh as in any week)...
    compare_weeks: int = Field(4, ge=3, le=8)
    # ...against a block as long ending this many weeks earlier ("a quarter ago").
    lookback_weeks: int = Field(13, ge=4, le=26)
    decline_pct: float = Field(20, gt=0, le=100)
    # With a year of history, weeks that last year also moved this way are judged against
    # last year's same weeks instead: "auto" | "yes" | "no", as for usage_drop.
    seasonal: Literal["auto", "yes", "no"] = "auto"
    min_baseline_daily_users: float = Field(1.0, ge=0)
    min_significance_z: float = Field(3.0, ge=0, le=10)
    # As for usage_drop: a flagged decline clears only when usage is back within this share of
    # the level it fell from, for this many days.
    recover_pct: float = Field(85, gt=0, le=100)
    recover_days: int = Field(7, ge=1, le=60)
    # ...or once each week of the last this many days is short of that level by less than
    # `decline_pct`: usage settled at a lower level is no longer a decline.
    settled_days: int = Field(28, ge=7, le=182)

    def history_days(self) -> int:
        """Days of history this rule reads (last year's same weeks and the 8 before them)."""
        span = (self.lookback_weeks + self.compare_weeks) * 7
        year = YEAR_DAYS + (self.compare_weeks + SEASON_LOOKBACK_WEEKS) * 7
        return max(span, year if self.seasonal != "no" else 0)

    @model_validator(mode="after")
    def _fits_the_history_kept(self) -> SlowDeclineRule:
        if self.history_days() > HISTORY_DAYS_KEPT:
            msg = (
                f"these settings read {self.history_days()} days of history but "
                f"{HISTORY_DAYS_KEPT} are kept: shorten compare_weeks or set seasonal: no"
            )
            raise ValueError(msg)
        return self


class KeyFeatureDeclineRule(UsageDropRule):
    """Each key feature's daily use against its own normal, measured like active users."""

    # Metrics (from metrics.counted); empty: the key_feature_not_adopted list.
    key_features: tuple[str, ...] = ()
    # Reading a year of every feature costs evaluation time: off unless asked for.
    seasonal: Literal["auto", "yes", "no"] = "no"


class ChampionLeftRule(_Strict):
    enabled: bool = True
    champion_labels: tuple[str, ...] = ("champion",)
    remember_days: int = Field(90, ge=1, le=730)


class InactivityRule(_Strict):
    enabled: bool = True
    days: int = Field(14, ge=1, le=365)  # no one at the account used the product for this long


class UtilizationRule(_Strict):
    enabled: bool = True
    # Users active in the last 30 days as a share of the seats purchased.
    below_pct: float = Field(60, gt=0, le=100)
    min_seats: int = Field(5, ge=1)  # too few seats for a share to mean much


class DecisionMakerRule(_Strict):
    enabled: bool = True
    # Regular expressions (case-insensitive) for titles that buy or block renewals.
    title_patterns: tuple[str, ...] = (
        r"\bchief\b",
        r"\bc[eiotfr]o\b",
        r"\bvp\b",
        r"vice president",
        r"\bhead of\b",
        r"\bdirector\b",
    )
    remember_days: int = Field(60, ge=1, le=365)


class RenewalRule(_Strict):
    enabled: bool = True
    # Any other risk with a renewal this close raises the account's level one step.
    within_days: int = Field(90, ge=1, le=730)


class ChampionJoinedRule(_Strict):
    enabled: bool = True
    champion_labels: tuple[str, ...] = ("champion",)
    remember_days: int = Field(90, ge=1, le=730)


class NpsRule(_Strict):
    enabled: bool = True
    days: int = Field(30, ge=1, le=365)  # detractor responses this recent


class CsatRule(_Strict):
    enabled: bool = True
    days: int = Field(30, ge=1, le=182)  # responses this recent
    below_pct: float = Field(70, gt=0, le=100)  # share of satisfied responses
    min_responses: int = Field(3, ge=1)  # fewer say little


class OpenTicketsRule(_Strict):
    enabled: bool = True
    days: int = Field(14, ge=1, le=365)  # a ticket open this long is long-open
    min_tickets: int = Field(1, ge=1)


class UtilizationGrowthRule(_Strict):
    enabled: bool = True
    # License utilization up this many percentage points over 30 days: an expansion signal.
    points: float = Field(10, gt=0, le=100)
    min_seats: int = Field(5, ge=1)


class TicketSpikeRule(_Strict):
    enabled: bool = True
    factor: float = Field(2.0, gt=1)  # tickets opened in 7 days against the weekly normal
    min_tickets: int = Field(3, ge=1)


class AdoptionRule(_Strict):
    enabled: bool = True
    # Metrics (from metrics.counted) whose absence over `days` means a key feature is unused.
    key_features: tuple[str, ...] = ()
    days: int = Field(30, ge=7, le=365)


class OnboardingRule(_Strict):
    enabled: bool = True
    # Metrics each new account should reach (be above zero) within `within_days` of starting.
    milestones: tuple[str, ...] = ()
    within_days: int = Field(90, ge=7, le=365)


class StickinessRule(_Strict):
    enabled: bool = True
    below_ratio: float = Field(0.2, gt=0, le=1)  # average daily users / users active in 30 days
    min_monthly_users: int = Field(5, ge=1)


class RiskConfig(_Strict):
    usage_drop: UsageDropRule = UsageDropRule()
    # The same measure on logins: people still come, but less often.
    login_frequency_drop: UsageDropRule = UsageDropRule()
    # Active users down over a quarter, steadily: the slow fade no weekly window sees.
    slow_decline: SlowDeclineRule = SlowDeclineRule()
    champion_left: ChampionLeftRule = ChampionLeftRule()
    inactivity: InactivityRule = InactivityRule()
    license_utilization: UtilizationRule = UtilizationRule()
    new_decision_maker: DecisionMakerRule = DecisionMakerRule()
    # A champion of another customer joined this account: a warm way in.
    champion_joined: ChampionJoinedRule = ChampionJoinedRule()
    nps_detractor: NpsRule = NpsRule()
    support_ticket_spike: TicketSpikeRule = TicketSpikeRule()
    long_open_tickets: OpenTicketsRule = OpenTicketsRule()
    csat_low: CsatRule = CsatRule()
    # Not a risk: more of the seats in use than 30 days ago, a reason to talk expansion.
    utilization_growth: UtilizationGrowthRule = UtilizationGrowthRule()
    key_feature_not_adopted: AdoptionRule = AdoptionRule()
    # Each key feature's use against its own normal (a feature used half as much).
    key_feature_decline: KeyFeatureDeclineRule = KeyFeatureDeclineRule()
    onboarding_stalled: OnboardingRule = OnboardingRule()
    low_stickiness: StickinessRule = StickinessRule()
    renewal: RenewalRule = RenewalRule()
    # Per-segment overrides (the segment comes from account_facts.segment), e.g.
    # enterprise: {usage_drop: {drop_pct: 30}}. Keys and values are checked like the rules above.
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Each segment's rules, built once when the config is loaded: assess() asks for them for
    # every account, and building them re-validates every rule.
    _by_segment: dict[str, RiskConfig] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _segments_are_valid_rules(self) -> RiskConfig:
        for segment, overrides in self.segments.items():
            if "segments" in overrides:
                msg = f"segments.{segment}: a segment cannot have segments of its own"
                raise ValueError(msg)
            try:
                self._by_segment[segment] = self._with_overrides(overrides)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                msg = f"segments.{segment}.{where}: {first['msg'].lower()}"
                raise ValueError(msg) from None
        return self

    def for_segment(self, segment: str | None) -> RiskConfig:
        """These rules with a segment's overrides applied (the rules as they are without one)."""
        return self._by_segment.get(segment or "", self)

    def _with_overrides(self, overrides: dict[str, Any]) -> RiskConfig:
        merged = self.model_dump()
        merged.pop("segments")
        for rule, values in overrides.items():
            base = merged.get(rule, {})
            merged[rule] = {**base, **values} if isinstance(values, dict) else values
        return RiskConfig.model_validate(merged)


class Evaluation(_Strict):
    """When dirty accounts are judged (integration/jobs/evaluate.py)."""

    # An account whose usage changed this recently waits: a backfill or a replay sent in chunks
    # is judged once all of it has arrived.
    settle_seconds: int = Field(60, ge=0, le=3600)
    # The dirty-account evaluation runs at most once in this many seconds.
    interval_seconds: int = Field(60, ge=0, le=3600)
    # An account that received history (a day older than yesterday) this recently, as a
    # backfill sent in chunks however far apart does, is judged only through the newest day the
    # latest of those deliveries brought it, even when live usage brought it newer days; once
    # quiet this long, as of the watermark (so an account that stopped is seen).
    backfill_quiet_seconds: int = Field(900, ge=0, le=86400)


class History(_Strict):
    """The audit trail kept per account (`integration history`): bounded, never the only copy."""

    # Assessments, runs, steps, actions, outcomes and people signals.
    keep_entries: int = Field(500, ge=10, le=100_000)
    # The folded usage and Segment signals, kept apart: a busy account sends them all day.
    keep_signals: int = Field(200, ge=10, le=100_000)
    keep_days: int = Field(400, ge=1, le=3650)


class Outcomes(_Strict):
    """What counts as a playbook's outcome, for `integration report`."""

    # A run's reason counts as cleared when it clears within this many days of the run's start.
    cleared_within_days: int = Field(30, ge=1, le=365)
    # Values of account_facts.renewal_status (case-insensitive) that mean renewed / churned.
    renewed_values: tuple[str, ...] = ("renewed", "closed won")
    churned_values: tuple[str, ...] = ("churned", "closed lost", "cancelled")


class Budget(_Strict):
    """One daily API budget per CRM, shared by every worker through Redis (adapters/budget.py),
    fed by the CRMs' own figures (HubSpot's X-HubSpot-RateLimit-Daily headers, Salesforce's
    Sforce-Limit-Info)."""

    # This share of the daily quota is kept for urgent playbooks: once only the reserve is
    # left, bulk field refreshes and other playbooks wait for the reset.
    reserve_share: float = Field(0.2, ge=0, lt=1)
    # HubSpot does not send the daily headers to OAuth apps: the daily limit to count against
    # then (None: unknown, nothing is held back).
    hubspot_daily_limit: int | None = Field(None, ge=1)
    # HubSpot's daily counter resets at midnight in the portal's time zone (an IANA name).
    hubspot_time_zone: str = "UTC"

    @field_validator("hubspot_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r}: give an IANA name such as Europe/Paris or UTC"
            raise ValueError(msg) from None
        return value


class Config(_Strict):
    crm: CrmConfig = CrmConfig()
    account_match: AccountMatch = AccountMatch()
    fields: FieldMap = FieldMap()
    owners: Owners = Owners()
    metrics: Metrics = Metrics()
    account_facts: AccountFacts = AccountFacts()
    webhooks: Webhooks = Webhooks()
    evaluation: Evaluation = Evaluation()
    risk: RiskConfig = RiskConfig()
    # Tune the shipped playbooks, switch them off, or write new ones (docs/playbooks.md).
    playbooks: dict[str, PlaybookEntry] = Field(default_factory=dict)
    work: Work = Work()
    # Slack and email, for playbook alerts beside the CRM's own.
    channels: Channels = Channels()
    history: History = History()
    outcomes: Outcomes = Outcomes()
    budget: Budget = Budget()

    _secrets: dict[str, str] = PrivateAttr(default_factory=dict)

    def secret(self, env_name: str) -> str:
        """The value of a secret the config names; loading has checked it is set."""
        return self._secrets[env_name]
