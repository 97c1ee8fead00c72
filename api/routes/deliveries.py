"""/v1/deliveries: every delivery record with its attempts, and manual retry."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from notify.api.deps import Auth, SettingsDep, Store
from notify.api.routes.subscriptions import owned
from notify.auth import Principal
from notify.errors import Conflict, InvalidInput, NotFound
from notify.redis.ledger import Ledger
from notify.redis.subscriptions import SubscriptionStore
from notify.settings import Settings

router = APIRouter(tags=["deliveries"])
SCAN_BUDGET = 2000
"""Records one listing may look at when filtering by status before handing a cursor."""

Status = Literal["pending", "delivered", "failed"]


def ledger(redis: Any, settings: Settings) -> Ledger:
    return Ledger(
        redis,
        lease_s=settings.delivery_lease_seconds,
        retention_s=settings.delivery_retention_seconds,
    )


def parse_cursor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    ms, _, ident = value.partition(":")
    if not (ms.isascii() and ms.isdigit()) or not ident:  # "²".isdigit() is true
        raise InvalidInput("cursor must be a value returned as 'next'", field="cursor")
    return int(ms), ident


RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["id", "subscription", "event_id", "status", "attempts"],
    "properties": {
        "id": {"type": "string", "description": "stable: the webhook-id a receiver sees"},
        "subscription": {"type": "string"},
        "event_id": {"type": "string"},
        "status": {"enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "array", "items": {"type": "object"}},
        "next_attempt_at": {"type": ["string", "null"]},
    },
}
LISTING: dict[str, Any] = {
    "type": "object",
    "required": ["deliveries", "next"],
    "properties": {
        "deliveries": {"type": "array", "items": RECORD},
        "next": {"type": ["string", "null"], "description": "`cursor` for the next page"},
    },
}


def answer(schema: dict[str, Any], text: str, status: int = 200) -> dict[int | str, Any]:
    return {status: {"description": text, "content": {"application/json": {"schema": schema}}}}


@router.get("/v1/deliveries", responses=answer(LISTING, "a page, newest first"))
async def list_(
    principal: Auth,
    redis: Store,
    settings: SettingsDep,
    subscription: Annotated[
        str | None,
        Query(
            max_length=64,
            description="the subscription whose deliveries to list; may be left out only"
            " with status=failed (else 422)",
        ),
    ] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None,
        Query(
            max_length=128,
            description="`next` of the previous page",
            json_schema_extra={"pattern": "^[0-9]+:.+$"},
        ),
    ] = None,
) -> dict[str, Any]:
    """A subscription's deliveries, newest first; or, without ``subscription`` and with
    ``status=failed``, every delivery that ended failed (the caller's; an admin's: all),
    newest failure first. ``next`` continues the listing; with a status filter a page
    may hold fewer than ``limit`` items and still have a ``next``."""
    book = ledger(redis, settings)
    if subscription is not None:
        await owned(SubscriptionStore(redis), principal, subscription)

        async def page(before: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
            return await book.page(subscription, before=before, count=count)

    elif status == "failed":
        user = None if principal.admin else principal.sub

        async def page(before: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
            return await book.failures(user, before=before, count=count)

    else:
        raise InvalidInput(
            "name a subscription, or list failures across them with status=failed",
            field="subscription",
        )
    before = parse_cursor(cursor)
    found: list[dict[str, Any]] = []
    scanned = 0
    exhausted = False
    while len(found) < limit and scanned < SCAN_BUDGET:
        rows = await page(before, 200)
        if not rows:
            exhausted = True
            break
        scanned += len(rows)
        records = {r["id"]: r for r in await book.get_many([i for _, i in rows])}
        for row in rows:
            before = row
            record = records.get(row[1])
            if record is not None and status in (None, record["status"]):
                found.append(record)
                if len(found) == limit:
                    break
    if before is None or exhausted or not await page(before, 1):
        return {"deliveries": found, "next": None}
    return {"deliveries": found, "next": f"{before[0]}:{before[1]}"}


async def visible(
    redis: Any, settings: Settings, principal: Principal, delivery_id: str
) -> dict[str, Any]:
    record = await ledger(redis, settings).get(delivery_id)
    if record is None or (record["user"] != principal.sub and not principal.admin):
        raise NotFound("no such delivery")
    return record


@router.get("/v1/deliveries/{delivery_id}", responses=answer(RECORD, "the delivery"))
async def read(
    delivery_id: str, principal: Auth, redis: Store, settings: SettingsDep
) -> dict[str, Any]:
    return await visible(redis, settings, principal, delivery_id)


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    status_code=202,
    responses=answer(RECORD, "started over", 202),
)
async def retry(
    delivery_id: str, principal: Auth, redis: Store, settings: SettingsDep
) -> dict[str, Any]:
    """Start a failed delivery over with a fresh retry schedule (sent within a second)."""
    record = await visible(redis, settings, principal, delivery_id)
    if not await ledger(redis, settings).retry(delivery_id, record["user"]):
        raise Conflict("only a failed delivery can be retried")
    return await visible(redis, settings, principal, delivery_id)
