"""One error tree, grouped by what the caller should do about it."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(IntegrationError):
    """The admin's config is wrong at `yaml_path`; `hint` says how to fix it."""

    def __init__(self, yaml_path: str, message: str, hint: str = "") -> None:
        self.yaml_path = yaml_path
        self.message = message
        self.hint = hint
        text = f"{yaml_path}: {message}" if yaml_path else message
        super().__init__(f"{text} (hint: {hint})" if hint else text)


class InvalidConfigError(IntegrationError):
    """Every problem found in one config file, so the admin fixes them in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


class PayloadError(IntegrationError):
    """A webhook body is invalid; answered with HTTP 400 naming `field`."""

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(f"{source}: {field}: {message}")


class SignatureError(IntegrationError):
    """A webhook's signature is missing, wrong or stale; answered with HTTP 401."""


class StorageUnavailableError(IntegrationError):
    """Redis did not take the signal; answered with HTTP 503 so the sender retries."""


class CrmError(IntegrationError):
    """A CRM call failed."""

    def __init__(self, crm: str, operation: str, message: str, status: int | None = None) -> None:
        self.crm = crm
        self.operation = operation
        self.status = status
        super().__init__(f"{crm} {operation} failed ({status or 'no status'}): {message}")


# Answers that say the CRM did not carry the request out, so a create was not made: a rate
# limit (HubSpot 429, Salesforce's REQUEST_LIMIT_EXCEEDED 403), a locked portal (HubSpot 423),
# or our own pause (adapters/waits.py, raised with the CRM's rate-limit status before sending).
NOT_PROCESSED_STATUSES = frozenset({403, 423, 429})


class CrmRetriableError(CrmError):
    """Rate limit, 5xx or timeout: wait and try again."""

    def __init__(
        self,
        crm: str,
        operation: str,
        message: str,
        status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(crm, operation, message, status)
        self.retry_after_seconds = retry_after_seconds

    @property
    def nothing_done(self) -> bool:
        """True when the CRM surely did nothing (after a 5xx or a timeout it may have)."""
        return self.status in NOT_PROCESSED_STATUSES


class CrmFatalError(CrmError):
    """Other 4xx or auth: a human must fix something; never retried."""


class CrmFeatureUnavailableError(CrmFatalError):
    """The CRM account lacks a feature (sequences API, cadences, notifications): fall back."""


class ChannelError(IntegrationError):
    """A Slack or email alert was not delivered; `retriable` says whether trying later may help."""

    def __init__(
        self,
        channel: str,
        message: str,
        retriable: bool,
        retry_after_seconds: float | None = None,
        code: str | None = None,
    ) -> None:
        self.channel = channel
        self.message = message
        self.retriable = retriable
        self.retry_after_seconds = retry_after_seconds
        self.code = code
        super().__init__(f"{channel}: {message}")
