"""Where the HubSpot access token comes from: a private app's token, or an OAuth refresh.

OAuth access tokens last about 30 minutes. HubSpot's guidelines say to refresh before expiry
rather than wait for a 401, so the token is cached in Redis (shared by all workers) until a few
minutes before it expires.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import requests
from redis import Redis

from adapters.hubspot.errors import CRM, from_response
from integration.errors import CrmRetriableError
from integration.store import keys
from integration.store.keys import text

# https://developers.hubspot.com/docs/api-reference/auth/oauth/v1: POST /oauth/v1/token
TOKEN_PATH = "/oauth/v1/token"  # noqa: S105 - a URL path
REFRESH_MARGIN_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 10


class TokenSource(Protocol):
    def token(self) -> str: ...


@dataclass(frozen=True)
class PrivateAppToken:
    value: str

    def token(self) -> str:
        return self.value


@dataclass
class OAuthTokens:
    base_url: str
    client_id: str
    client_secret: str
    refresh_token: str
    redis: Redis
    cache_key: str = keys.crm_access_token("hubspot")

    def token(self) -> str:
        cached = self.redis.get(self.cache_key)
        if cached:
            return text(cached)
        return self._refresh()

    def _refresh(self) -> str:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        try:
            answer = requests.post(
                f"{self.base_url.rstrip('/')}{TOKEN_PATH}", data=form, timeout=HTTP_TIMEOUT_SECONDS
            )
        except requests.RequestException as exc:
            msg = f"token refresh failed: {type(exc).__name__}"
            raise CrmRetriableError(CRM, "refresh_token", msg) from exc
        if answer.status_code != 200:  # noqa: PLR2004 - anything else is a failed refresh
            # 400 invalid_grant / BAD_REFRESH_TOKEN means the app was uninstalled or revoked.
            raise from_response(
                answer.status_code, answer.text, dict(answer.headers), "refresh_token"
            )
        payload = json.loads(answer.text)
        ttl = max(int(payload.get("expires_in", 1800)) - REFRESH_MARGIN_SECONDS, 60)
        self.redis.set(self.cache_key, payload["access_token"], ex=ttl)
        return str(payload["access_token"])
