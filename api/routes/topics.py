"""/v1/topics: the admin's catalogue of what users may subscribe to."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from notify.api import schemas
from notify.api.deps import Auth, Store
from notify.api.routes.publish import read_json
from notify.api.routes.subscriptions import body_doc, json
from notify.auth import Principal
from notify.errors import Forbidden, NotFound
from notify.redis.topics import TopicStore
from notify.subscriptions import KINDS
from notify.topics import MAX_DESCRIPTION, MAX_TITLE, Topic, parse_topic, validate_id

router = APIRouter(tags=["topics"])
MAX_BODY = 16 * 1024
SEGMENT = rf"(?:{schemas.SEGMENT_RE}|\*|\{{user\}})"
TOPIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "channel", "sinks"],
    "additionalProperties": False,
    "properties": {
        "title": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TITLE,
            "pattern": r"\S",
            "example": "Order updates",
        },
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
        "channel": {
            "type": "string",
            "maxLength": 120,
            "pattern": rf"^(?:>|{SEGMENT}(?:\.{SEGMENT}){{0,7}}(?:\.>)?)$",
            "example": "user.{user}.orders",
            "description": "a pattern; {user} (a whole segment) stands for the subscriber's sub",
        },
        "types": schemas.TYPE_PATTERNS,
        "sinks": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(KINDS)},
            "example": ["web", "email"],
        },
    },
}
TOPIC_VIEW: dict[str, Any] = {
    "type": "object",
    "required": ["id", "title", "description", "channel", "template", "sinks"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "channel": {"type": "string", "description": "the pattern for the caller"},
        "template": {"type": "string", "description": "the pattern as defined, with {user}"},
        "types": {"type": "array", "items": {"type": "string"}},
        "sinks": {"type": "array", "items": {"type": "string"}},
    },
}


def answers(ok: dict[int | str, str]) -> dict[int | str, Any]:
    """OpenAPI responses: topic bodies for ``ok`` (the errors are added by api.routes.docs)."""
    return {
        status: {"description": text, "content": {"application/json": {"schema": TOPIC_VIEW}}}
        for status, text in ok.items()
    }


TopicId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the topic's id")]


def readable(principal: Principal, topic: Topic) -> bool:
    return principal.can_read(topic.channel_for(principal.sub))


def require_admin(principal: Principal) -> None:
    if not principal.admin:
        raise Forbidden("only an admin may change topics")


@router.get(
    "/v1/topics",
    responses={
        200: {
            "description": "the topics the caller may read",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["topics"],
                        "properties": {"topics": {"type": "array", "items": TOPIC_VIEW}},
                    }
                }
            },
        },
    },
)
async def list_(principal: Auth, redis: Store) -> dict[str, Any]:
    """The topics the caller may read, each ``channel`` resolved for the caller
    (``template`` keeps the definition with ``{user}``)."""
    topics = await TopicStore(redis).all()
    return {"topics": [t.public(principal.sub) for t in topics if readable(principal, t)]}


@router.get(
    "/v1/topics/{topic_id}",
    responses=answers({200: "the topic"}),
)
async def read(topic_id: TopicId, principal: Auth, redis: Store) -> dict[str, Any]:
    topic = await TopicStore(redis).get(validate_id(topic_id))
    if topic is None or not readable(principal, topic):
        raise NotFound("no such topic")
    return topic.public(principal.sub)


@router.put(
    "/v1/topics/{topic_id}",
    openapi_extra=body_doc(TOPIC_SCHEMA),
    responses=answers({200: "replaced", 201: "created"}),
)
async def put(topic_id: TopicId, request: Request, principal: Auth, redis: Store) -> Response:
    """Create (201) or replace (200) a topic. Admin only."""
    require_admin(principal)
    topic = parse_topic(topic_id, await read_json(request, MAX_BODY))
    created = await TopicStore(redis).put(topic)
    return json(topic.public(), 201 if created else 200)


@router.delete(
    "/v1/topics/{topic_id}",
    status_code=204,
)
async def delete(topic_id: TopicId, principal: Auth, redis: Store) -> Response:
    """Remove a topic (the subscriptions made from it stay). Admin only."""
    require_admin(principal)
    if not await TopicStore(redis).delete(validate_id(topic_id)):
        raise NotFound("no such topic")
    return Response(status_code=204)
