"""POST /webhooks/salesforce: Outbound Messages (SOAP), acknowledged only once durably queued.

Salesforce retries a message for 24 hours until it gets `<Ack>true</Ack>`, so the ack is sent
only after every notification is in Redis; anything we cannot take gets a SOAP fault (and
Salesforce keeps the message in its queue, visible to the admin). Each notification's Id is its
dedupe key.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from redis.exceptions import RedisError

from integration.jobs.queues import enqueue_record_snapshot
from integration.store.unmatched import record_unmatched
from webhooks.clients import queue_redis
from webhooks.edge import config, redis
from webhooks.salesforce_soap import ACK, OutboundMessageError, fault, parse_outbound

bp = Blueprint("salesforce", __name__)
SOURCE = "salesforce"
ORG_ID_PREFIX = 15  # an 18-character Id is the 15-character one plus a checksum


def _soap(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/xml")


@bp.post("/webhooks/salesforce")
def receive_outbound_message() -> Response:
    settings = config().crm.salesforce.outbound
    if config().crm.kind != "salesforce" or settings is None:
        why = "Salesforce outbound messages are not configured (crm.salesforce.outbound)"
        return _soap(fault(why), 404)
    if settings.token_env and not hmac.compare_digest(
        request.args.get("token", "").encode(), config().secret(settings.token_env).encode()
    ):
        return _soap(fault("missing or wrong ?token= in the endpoint URL"), 401)
    try:
        outbound = parse_outbound(request.get_data(cache=True))
    except OutboundMessageError as exc:
        return _soap(fault(str(exc)), 400)
    if outbound.organization_id[:ORG_ID_PREFIX] != settings.organization_id[:ORG_ID_PREFIX]:
        text = f"OrganizationId {outbound.organization_id} is not the org this endpoint serves"
        return _soap(fault(text), 403)
    try:
        for notification in outbound.notifications:
            enqueue_record_snapshot(
                queue_redis(),
                SOURCE,
                notification.sobject_type,
                notification.fields,
                notification.notification_id,
            )
        for reason in outbound.skipped:
            record_unmatched(
                redis(), "outbound_message", reason, outbound.action_id, datetime.now(UTC)
            )
    except RedisError:
        return _soap(fault("signal storage is unavailable; please retry", "soapenv:Server"), 503)
    return _soap(ACK, 200)
