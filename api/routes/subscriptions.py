"""/v1/subscriptions: a user's standing orders, and their secrets and replays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from notify.api import schemas
from notify.api.deps import Auth, SettingsDep, Store
from notify.api.routes.publish import read_json
from notify.auth import Principal
from notify.errors import Conflict, InvalidInput, NotFound
from notify.events import parse_id
from notify.redis.subscriptions import SubscriptionStore
from notify.subscriptions import (
    USER_RE,
    Subscription,
    parse_create,
    parse_patch,
    sink_kind_change,
)
from notify.webhooks import is_signing_key, new_secret, new_signing_key

router = APIRouter(tags=["subscriptions"])
MAX_BODY = 64 * 1024
REPLAY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["after"],
    "additionalProperties": False,
    "properties": {"after": schemas.EVENT_ID},
}
VIEW: dict[str, Any] = {
    "type": "object",
    "required": ["id", "user", "channel", "types", "sink", "enabled", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "user": {"type": "string"},
        "channel": {"type": "string"},
        "types": {"type": "array", "items": {"type": "string"}},
        "sink": {"type": "object"},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "public_key": {"type": "string", "description": "a v1a webhook's Ed25519 public key"},
        "secret": {
            "type": "string",
            "description": "a webhook's new signing secret: in this answer only",
        },
    },
}
LIST: dict[str, Any] = {
    "type": "object",
    "required": ["subscriptions"],
    "properties": {"subscriptions": {"type": "array", "items": VIEW}},
}
REPLAYING: dict[str, Any] = {
    "type": "object",
    "required": ["replay", "subscription", "after", "until"],
    "properties": {
        name: {"type": "string"} for name in ("replay", "subscription", "after", "until")
    },
}
UserQuery = Annotated[
    str | None,
    Query(max_length=64, description="admin only", json_schema_extra={"pattern": USER_RE}),
]


def answer(status: int, schema: dict[str, Any], text: str = "") -> dict[int | str, Any]:
    return {status: {"description": text, "content": {"application/json": {"schema": schema}}}}


def body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def owned(store: SubscriptionStore, principal: Principal, sub_id: str) -> Subscription:
    """The subscription, if the caller may see it; 404 otherwise, so ids do not leak."""
    sub = await store.get(sub_id)
    if sub is None or (sub.user != principal.sub and not principal.admin):
        raise NotFound("no such subscription")
    return sub


@router.post(
    "/v1/subscriptions",
    status_code=201,
    openapi_extra=body_doc(schemas.SUBSCRIPTION_CREATE),
    responses=answer(201, VIEW, "created"),
)
async def create(
    request: Request,
    principal: Auth,
    redis: Store,
    settings: SettingsDep,
    user: UserQuery = None,
) -> Response:
    """Create a subscription (an admin may create it for another ``user``, in the body
    or the query). A webhook's signing secret is in this answer only."""
    draft = parse_create(
        await read_json(request, MAX_BODY),
        allow_private=settings.allow_private_targets,
        allowed=settings.private_targets,
    )
    if user is not None and draft.user is not None and user != draft.user:
        raise InvalidInput("user is given twice, as two different users", field="user")
    user = principal.acting_for(draft.user if draft.user is not None else user)
    principal.require_read(draft.channel)
    secret = new_key(draft.sink) if draft.sink["kind"] == "webhook" else None
    sub = await SubscriptionStore(redis).create(
        draft, user, limit=settings.max_subscriptions_per_user, secret=secret
    )
    body = sub.public()
    if secret and not is_signing_key(secret):
        body["secret"] = secret  # an Ed25519 key stays here: its receiver has public_key
    return json(body, 201, headers={"Location": f"/v1/subscriptions/{sub.id}"})


@router.get("/v1/subscriptions", responses=answer(200, LIST))
async def list_(
    principal: Auth,
    redis: Store,
    user: UserQuery = None,
) -> dict[str, Any]:
    """The caller's subscriptions (an admin may name another ``user``)."""
    who = principal.acting_for(user)
    subs = await SubscriptionStore(redis).for_user(who)
    return {"subscriptions": [s.public() for s in subs]}


@router.get("/v1/subscriptions/{sub_id}", responses=answer(200, VIEW))
async def read(sub_id: str, principal: Auth, redis: Store) -> dict[str, Any]:
    return (await owned(SubscriptionStore(redis), principal, sub_id)).public()


@router.patch(
    "/v1/subscriptions/{sub_id}",
    openapi_extra=body_doc(schemas.SUBSCRIPTION_PATCH),
    responses=answer(200, VIEW),
)
async def patch(
    sub_id: str, request: Request, principal: Auth, redis: Store, settings: SettingsDep
) -> dict[str, Any]:
    """Change the pattern, types or sink settings, or enable/disable."""
    store = SubscriptionStore(redis)
    current = await owned(store, principal, sub_id)
    change = parse_patch(
        await read_json(request, MAX_BODY),
        allow_private=settings.allow_private_targets,
        allowed=settings.private_targets,
    )
    sink_kind_change(current, change)
    only_disables = change.enabled is False and (
        change.channel is None and change.types is None and change.sink is None
    )
    if not only_disables:
        # as creation does: the caller must still be able to read what it routes
        # (a token that lost the right could otherwise re-point an existing webhook)
        principal.require_read(change.channel if change.channel is not None else current.channel)

    def apply(sub: Subscription) -> Subscription:
        out = sub
        if change.channel is not None:
            out = replace(out, channel=change.channel)
        if change.types is not None:
            out = replace(out, types=change.types)
        if change.sink is not None:
            out = replace(out, sink=change.sink)
        if change.enabled is not None:
            out = replace(out, enabled=change.enabled, disabled_reason=None)
        return out

    return (await store.update(sub_id, apply)).public()


@router.delete("/v1/subscriptions/{sub_id}", status_code=204)
async def delete(sub_id: str, principal: Auth, redis: Store) -> Response:
    store = SubscriptionStore(redis)
    await owned(store, principal, sub_id)
    await store.delete(sub_id)
    return Response(status_code=204)


@router.post("/v1/subscriptions/{sub_id}/rotate-secret", responses=answer(200, VIEW))
async def rotate_secret(sub_id: str, principal: Auth, redis: Store) -> dict[str, Any]:
    """A new signing secret; the previous one keeps signing beside it for 24 hours."""
    store = SubscriptionStore(redis)
    current = await owned(store, principal, sub_id)
    if current.kind != "webhook":
        raise Conflict("only webhook subscriptions have a signing secret")
    principal.require_read(current.channel)  # as creation does
    secret = new_key(current.sink)
    now = float(await store.server_ms()) / 1000
    sub = await store.update(sub_id, lambda s: s.rotated(secret, now))
    if is_signing_key(secret):
        return sub.public()  # public_key is the new one; the old keeps signing for 24 h
    return {**sub.public(), "secret": secret}


def new_key(sink: Mapping[str, Any]) -> str:
    return new_signing_key() if sink.get("signature") == "v1a" else new_secret()


@router.post(
    "/v1/subscriptions/{sub_id}/replay",
    status_code=202,
    openapi_extra=body_doc(REPLAY_SCHEMA),
    responses=answer(202, REPLAYING, "replay requested"),
)
async def replay(
    sub_id: str, request: Request, principal: Auth, redis: Store, settings: SettingsDep
) -> dict[str, Any]:
    """Deliver again every retained event after ``after`` that the subscription matches.

    Each (subscription, event) keeps its one delivery record and id: a delivered or
    failed record is reset to pending, a missing one is created.
    """
    store = SubscriptionStore(redis)
    sub = await owned(store, principal, sub_id)
    if sub.kind == "web":
        raise Conflict("a web feed is resumed with last_event_id, not replayed")
    principal.require_read(sub.channel)
    raw = await read_json(request, MAX_BODY)
    if not isinstance(raw, dict) or set(raw) != {"after"}:
        raise InvalidInput('body must be {"after": "<event id>"}', field="after")
    after = raw["after"]
    parse_id(after, field="after")
    assert isinstance(after, str)
    request_ = await store.request_replay(sub.id, after, settings.shards)
    return {"replay": request_.id, "subscription": sub.id, "after": after, "until": request_.until}


def json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")
