"""The event log on Redis Streams (adapter).

Every event takes its id from one global stream (``keys.LOG``), which gateways tail
and dispatchers read as a consumer group. The same entry is stored under the same
id in its channel's own stream (``keys.channel_stream``), in the same Lua call, so
one cursor resumes any set of channels: exact channels read their own stream,
patterns read the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)

from notify import keys
from notify.channels import PatternIndex, is_wildcard
from notify.errors import StoreUnavailable
from notify.eventlog import Entry, Page
from notify.events import EventDraft, is_last_possible, parse_id
from notify.redis import scripts
from notify.redis.client import AsyncRedisCluster, async_client
from notify.redis.errors import TRANSIENT, translated
from notify.shards import CURSOR_MARK, Positions, id_text, merge, shard_of, split

IDEMPOTENCY_SECONDS = 86400
SCAN_BUDGET = 20_000
"""Log entries one history call may scan for a pattern before handing back a cursor."""

APPEND_LUA = scripts.source("event_append")
SINGLE = keys.shard(0, 1)
"""The one shard of an unsharded log: keys.LOG and keys.channel_stream."""
"""The append script: the gateways' and the producers' (notify.publisher) alike."""


@dataclass(frozen=True, slots=True)
class Retention:
    seconds: int
    max_events: int
    channel_max_events: int

    def append_args(self, drafts: Sequence[EventDraft], shard: keys.Shard = SINGLE) -> list[Any]:
        return [
            self.seconds * 1000,
            self.max_events,
            self.channel_max_events,
            self.seconds + 60,
            IDEMPOTENCY_SECONDS,
            shard.channel_prefix,
            pack(drafts),
            shard.count,
            shard.index,
        ]


def pack(drafts: Sequence[EventDraft]) -> bytes:
    """The drafts as the append script reads them: channel, type, origin and body of
    each in turn, each after its length (big-endian, 2 bytes; 4 for the body)."""
    heads: dict[tuple[str, str, str], bytes] = {}  # a batch repeats a few of these
    parts: list[bytes] = []
    for channel, type_, body, origin in drafts:
        key = (channel, type_, origin)
        head = heads.get(key)
        if head is None:
            c, t, o = channel.encode(), type_.encode(), origin.encode()
            head = b"".join((len(c).to_bytes(2, "big"), c, len(t).to_bytes(2, "big"), t))
            head = heads[key] = head + len(o).to_bytes(2, "big") + o
        parts.append(head)
        parts.append(len(body).to_bytes(4, "big"))
        parts.append(body)
    return b"".join(parts)


def append_keys(idem_key: str | None, shard: keys.Shard = SINGLE) -> list[str]:
    """The append script's keys: the shard's log and, when given, the idempotency
    record (under the shard's tag, so that every key is in the log's slot)."""
    if idem_key is None:
        return [shard.log]
    return [shard.log, shard.idempotency(idem_key)]


def decode_append(raw: Any, drafts: Sequence[EventDraft]) -> list[tuple[str, str]]:
    """(id, channel) per draft from the append script's answer: the ids in order, or,
    for a request with an idempotency key, the JSON pairs kept for its retries."""
    if isinstance(raw, list):
        return [(i.decode(), d.channel) for i, d in zip(raw, drafts, strict=True)]
    pairs: list[list[str]] = orjson.loads(raw)
    return [(i, c) for i, c in pairs]


ENVELOPE_START = b'{"channel":'
"""How every body the append script stores begins (see :func:`notify.events.encode_draft`)."""


def entry_from(raw_id: bytes | str, fields: dict[bytes, bytes]) -> Entry | None:
    """The entry, or None for one that notify did not write: the log is a Redis stream
    that any client with write access can add to, and one entry without a channel, a
    type or an envelope must not stop every reader that meets it (the gateways' and
    the dispatchers' would fail on it at every read). Such entries are skipped."""
    try:
        c, t, b = fields[b"c"], fields[b"t"], fields[b"b"]
        if not (b.startswith(ENVELOPE_START) and b.endswith(b"}")):
            return None
        return Entry(
            id=raw_id.decode() if isinstance(raw_id, bytes) else raw_id,
            channel=c.decode(),
            type=t.decode(),
            origin=fields.get(b"o", b"").decode(),
            body=b,
        )
    except (KeyError, UnicodeDecodeError):
        return None


def entry_from_flat(raw_id: bytes, fields: list[bytes]) -> Entry | None:
    """An entry from the raw reply (field, value, field, value, ...): the fields come in
    the order the append script writes them, so no dict is built for them."""
    if (
        len(fields) != 8
        or fields[0] != b"c"
        or fields[2] != b"t"
        or fields[4] != b"o"
        or fields[6] != b"b"
        or not fields[7].startswith(ENVELOPE_START)
        or not fields[7].endswith(b"}")
    ):
        return entry_from(raw_id, dict(zip(fields[0::2], fields[1::2], strict=False)))
    try:
        return Entry(
            raw_id.decode(), fields[1].decode(), fields[3].decode(), fields[5].decode(), fields[7]
        )
    except UnicodeDecodeError:
        return None


def _flat_channel(fields: list[bytes]) -> bytes:
    if len(fields) > 1 and fields[0] == b"c":
        return fields[1]
    return dict(zip(fields[0::2], fields[1::2], strict=False)).get(b"c", b"")


def _raw_reply(response: Any, **_: Any) -> Any:
    return response


def _exclusive(after: str | None) -> str:
    return "-" if after is None else "(" + after


class RedisEventLog:
    """EventLog on a redis.asyncio client (created with ``decode_responses=False``).

    The hot path: its methods call ``translated`` themselves around each command rather
    than through ``translating``, which would add a coroutine frame to every publish."""

    def __init__(
        self,
        client: aioredis.Redis,
        retention: Retention,
        reader: aioredis.Redis | None = None,
        *,
        min_replicas: int = 0,
        wait_ms: int = 1000,
        shard: keys.Shard = SINGLE,
    ) -> None:
        """``reader``, when given, is a client of its own for the blocking ``tail``
        (so it never holds a pooled connection that requests need); its XREAD replies
        are left raw and parsed here, which is most of a busy reader's cost saved."""
        self._r = client
        self.shard = shard
        self._log = shard.log
        self._retention = retention
        self._script = client.register_script(APPEND_LUA)
        self._reader = reader
        self._min_replicas = min_replicas
        self._wait_ms = wait_ms
        if reader is not None:
            reader.set_response_callback("XREAD", _raw_reply)

    async def aclose(self) -> None:
        """Close the reader's own client (the shared one belongs to the caller)."""
        if self._reader is not None:
            await self._reader.aclose()

    async def append(
        self,
        drafts: Sequence[EventDraft],
        *,
        idempotency_key: str | None = None,
    ) -> list[tuple[str, str]]:
        args = self._retention.append_args(drafts, self.shard)
        script_keys = append_keys(idempotency_key, self.shard)
        with translated():
            if self._min_replicas:
                raw = await self._append_replicated(script_keys, args)
            else:
                raw = await self._script(keys=script_keys, args=args)
        return decode_append(raw, drafts)

    async def event(self, event_id: str) -> Entry | None:
        """One retained event by its id, or None when it is not (or no longer) kept."""
        with translated():
            got: Any = await self._r.xrange(self._log, event_id, event_id, count=1)
        return entry_from(got[0][0], got[0][1]) if got else None

    async def _append_replicated(self, script_keys: list[str], args: list[Any]) -> Any:
        """The append, then WAIT on the same connection (WAIT counts the replicas that
        have this connection's writes): acknowledged only once enough replicas have it,
        so a failover to one of them loses no acknowledged event."""
        if isinstance(self._r, AsyncRedisCluster):
            raw, acked = await self._append_on_node(script_keys, args)
        else:
            pipe: Any = self._r.pipeline(transaction=False)
            async with pipe:
                await self._script(keys=script_keys, args=args, client=pipe)
                pipe.execute_command("WAIT", self._min_replicas, self._wait_ms)
                raw, acked = await pipe.execute()
        if int(acked) < self._min_replicas:
            raise StoreUnavailable(
                f"event store has not replicated the write to {self._min_replicas} replica(s)"
                " in time"
            )
        return raw

    async def _append_on_node(self, script_keys: list[str], args: list[Any]) -> tuple[Any, Any]:
        """Redis Cluster: the cluster client sends WAIT to every primary on connections
        of its choosing, so the append and its WAIT go down one connection of the node
        that serves the shard's slot. EVAL with the source, not EVALSHA: a promoted
        replica has not loaded the script. When the node is gone or no longer serves
        the slot, a keyed command through the cluster client updates its slot map, and
        the publish is a 503 (the client retries it; nothing was acknowledged)."""
        cluster: Any = self._r
        await cluster.initialize()
        node = cluster.get_node_from_key(self._log)
        conn = node.acquire_connection()
        commands = [
            ("EVAL", APPEND_LUA, len(script_keys), *script_keys, *args),
            ("WAIT", self._min_replicas, self._wait_ms),
        ]
        try:
            await conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()
            with contextlib.suppress(Exception):
                await cluster.exists(self._log)  # refreshes the slot map
            raise
        finally:
            node.release(conn)
        raw, acked = replies
        if isinstance(raw, ResponseError):
            if isinstance(raw, AskError | ClusterDownError | TryAgainError):  # MOVED is an AskError
                with contextlib.suppress(Exception):
                    await cluster.exists(self._log)
                raise StoreUnavailable(f"the shard's slot moved: {raw}")
            raise raw
        if isinstance(acked, ResponseError):
            raise acked
        return raw, acked

    async def normalize(self, cursor: str) -> str:
        return cursor

    async def head(self) -> str:
        with translated():
            last: Any = await self._r.xrevrange(self._log, "+", "-", count=1)
        return str(last[0][0].decode()) if last else "0-0"

    async def tail(
        self,
        after: str,
        count: int,
        block_ms: int,
        wanted: Callable[[bytes], bool] | None = None,
    ) -> Page:
        if self._reader is not None:
            with translated():
                raw: Any = await self._reader.execute_command(  # type: ignore[no-untyped-call]
                    "XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", self._log, after
                )
            if not raw:
                return Page([], None)
            # RESP3 answers a map of stream -> entries, RESP2 a list of pairs
            flat = next(iter(raw.values())) if isinstance(raw, dict) else raw[0][1]
            kept = [
                e
                for i, f in flat
                if (wanted is None or wanted(_flat_channel(f)))
                and (e := entry_from_flat(i, f)) is not None
            ]
            return Page(kept, flat[-1][0].decode())
        with translated():
            got: Any = await self._r.xread({self._log: after}, count=count, block=block_ms)
        if not got:
            return Page([], None)
        pairs = got[0][1]
        kept = [
            e
            for i, f in pairs
            if (wanted is None or wanted(f.get(b"c", b""))) and (e := entry_from(i, f)) is not None
        ]
        return Page(kept, _text(pairs[-1][0]))

    async def history(
        self, patterns: Sequence[str], after: str | None, limit: int, until: str | None = None
    ) -> Page:
        """Events matching ``patterns`` after ``after`` (exclusive) up to ``until``
        (inclusive), oldest first. ``next`` is where to continue, None at the end."""
        if after is not None and is_last_possible(after):
            return Page([], None)
        with translated():
            if any(is_wildcard(p) for p in patterns) or len(patterns) > 16:
                return await self._scan_log(patterns, after, limit, until or "+")
            return await self._read_channels(patterns, after, limit, until or "+")

    async def _read_channels(
        self, channels: Sequence[str], after: str | None, limit: int, until: str
    ) -> Page:
        pipe = self._r.pipeline(transaction=False)
        for ch in dict.fromkeys(channels):
            pipe.xrange(self.shard.channel_stream(ch), _exclusive(after), until, count=limit)
        results: list[Any] = await pipe.execute()
        more = any(len(r) >= limit for r in results)
        read = (entry_from(i, f) for r in results for i, f in r)
        merged = sorted((e for e in read if e is not None), key=lambda e: parse_id(e.id))
        scanned = sum(len(r) for r in results)
        if len(merged) > limit:
            merged, more = merged[:limit], True
        return Page(merged, merged[-1].id if more and merged else None, scanned=scanned)

    async def _scan_log(
        self, patterns: Sequence[str], after: str | None, limit: int, until: str
    ) -> Page:
        index: PatternIndex[str] = PatternIndex()
        for p in patterns:
            index.add(p, p)
        found: list[Entry] = []
        cursor = after
        scanned = 0
        while scanned < SCAN_BUDGET:
            chunk: Any = await self._r.xrange(self._log, _exclusive(cursor), until, count=1000)
            if not chunk:
                return Page(found, None, scanned=scanned)
            for raw_id, fields in chunk:
                scanned += 1
                cursor = _text(raw_id)
                entry = entry_from(raw_id, fields)
                if entry is not None and next(index.match(entry.channel), None) is not None:
                    found.append(entry)
                    if len(found) == limit:
                        return Page(found, entry.id, scanned=scanned)
            if len(chunk) < 1000:
                return Page(found, None, scanned=scanned)
        return Page(found, cursor, scanned=scanned)

    async def position(self, patterns: Sequence[str], cursor: str) -> str | None:
        """Why a resume from ``cursor`` cannot be gapless, or None when it can.

        ``history_expired``: events after the cursor may have been trimmed;
        ``unknown_cursor``: the cursor is ahead of everything this log ever held (the
        store lost data). Redis does not record which ids trimming removed, only that
        it removed some before the first kept entry, so a cursor that is exactly the
        last trimmed event also reports a gap; the replay that follows is still exact.
        """
        at = parse_id(cursor)
        with translated():
            log = await self._info(self._log)
            if log is None:
                return "unknown_cursor" if at > (0, 0) else None
            if at > log.last:
                return "unknown_cursor"
            log_lost = log.trimmed and at < log.first
            if any(is_wildcard(p) for p in patterns):
                return "history_expired" if log_lost else None
            for ch in dict.fromkeys(patterns):
                info = await self._info(self.shard.channel_stream(ch))
                if info is not None and info.trimmed and at < info.first:
                    return "history_expired"
                # a channel stream that expired whole (idle past retention) leaves no
                # trace of itself; only the log can tell that its time was trimmed
                if (info is None or at < info.first) and log_lost:
                    return "history_expired"
            return None

    async def _info(self, key: str) -> StreamInfo | None:
        try:
            raw = await self._r.xinfo_stream(key)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return None
            raise
        last = parse_id(_text(raw.get("last-generated-id", b"0-0")))
        first_entry = raw.get("first-entry")
        first = parse_id(_text(first_entry[0])) if first_entry else (last[0], last[1] + 1)
        trimmed = int(raw.get("entries-added", 0)) > int(raw.get("length", 0))
        return StreamInfo(first=first, last=last, trimmed=trimmed)


class ShardedEventLog:
    """The EventLog over N shards (see notify.shards), each a RedisEventLog of its own
    keys. A batch is appended per shard (atomic on each: with an idempotency key, a
    retry completes it exactly); history merges the shards by id and hands out cursors
    that cover every shard. The hub tails each shard itself (``shards``)."""

    def __init__(self, shards: Sequence[RedisEventLog]) -> None:
        self.shards = list(shards)
        self.count = len(self.shards)
        self.positions = Positions(self.count)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()

    async def append(
        self, drafts: Sequence[EventDraft], *, idempotency_key: str | None = None
    ) -> list[tuple[str, str]]:
        groups = split([d.channel for d in drafts], self.count)
        if len(groups) == 1:
            (only,) = groups
            return await self.shards[only].append(drafts, idempotency_key=idempotency_key)
        parts = await asyncio.gather(
            *(
                self.shards[s].append([drafts[i] for i in idx], idempotency_key=idempotency_key)
                for s, idx in groups.items()
            )
        )
        return merge(dict(zip(groups, parts, strict=True)), groups, len(drafts))

    def _own(self, event_id: str) -> int:
        """The shard that gave out ``event_id`` (its sequence number modulo N)."""
        return parse_id(event_id)[1] % self.count

    async def event(self, event_id: str) -> Entry | None:
        return await self.shards[self._own(event_id)].event(event_id)

    async def _heads(self) -> list[tuple[int, int]]:
        heads = await asyncio.gather(*(s.head() for s in self.shards))
        return [parse_id(h) for h in heads]

    async def head(self) -> str:
        return self.positions.encode(await self._heads())

    async def normalize(self, cursor: str) -> str:
        """An event id becomes a cursor: exact on its own shard; on the others, the
        same point in time, or the shard's head when that is earlier (so the hub,
        which waits to reach a cursor, never waits for an id a shard has not given)."""
        if cursor.startswith(CURSOR_MARK):
            return cursor
        at = parse_id(cursor, field="last_event_id")
        own = at[1] % self.count
        heads = await self._heads()
        return self.positions.encode(
            [at if s == own else min(at, head) for s, head in enumerate(heads)]
        )

    def _patterns(self, patterns: Sequence[str]) -> dict[int, list[str]]:
        """The patterns each shard must be asked for: exact channels on their own
        shard only, patterns with wildcards on every shard."""
        out: dict[int, list[str]] = {}
        for p in patterns:
            targets = range(self.count) if is_wildcard(p) else (shard_of(p, self.count),)
            for s in targets:
                out.setdefault(s, []).append(p)
        return out

    async def history(
        self, patterns: Sequence[str], after: str | None, limit: int, until: str | None = None
    ) -> Page:
        start = list(self.positions.parse(after)) if after is not None else [(0, 0)] * self.count
        end = self.positions.parse(until) if until is not None else None
        asked = self._patterns(patterns)
        order = sorted(asked)
        pages = await asyncio.gather(
            *(
                self.shards[s].history(
                    asked[s],
                    id_text(start[s]) if after is not None else None,
                    limit,
                    id_text(end[s]) if end is not None else None,
                )
                for s in order
            )
        )
        tagged = [
            (parse_id(e.id), s, e)
            for s, page in zip(order, pages, strict=True)
            for e in page.entries
        ]
        tagged.sort(key=lambda t: t[0])
        kept = tagged[:limit]
        vector = start[:]
        cursors: list[str] = []
        for at, s, _ in kept:
            vector[s] = at
            cursors.append(self.positions.encode(vector))
        more = len(tagged) > limit
        included = {s: 0 for s in order}
        for _, s, _ in kept:
            included[s] += 1
        for s, page in zip(order, pages, strict=True):
            whole = included[s] == len(page.entries)
            if not whole:
                continue
            if page.next is not None:
                vector[s] = max(vector[s], parse_id(page.next))  # a scan's progress
                more = True
            elif end is not None:
                vector[s] = max(vector[s], end[s])  # read up to `until`: all of it
        entries = [e for _, _, e in kept]
        return Page(
            entries,
            self.positions.encode(vector) if more else None,
            scanned=sum(p.scanned for p in pages),
            cursors=cursors,
        )

    async def position(self, patterns: Sequence[str], cursor: str) -> str | None:
        at = self.positions.parse(cursor)
        asked = self._patterns(patterns)
        reasons = await asyncio.gather(
            *(self.shards[s].position(asked[s], id_text(at[s])) for s in sorted(asked))
        )
        for reason in ("unknown_cursor", "history_expired"):
            if reason in reasons:
                return reason
        return None

    async def tail(
        self,
        after: str,
        count: int,
        block_ms: int,
        wanted: Callable[[bytes], bool] | None = None,
    ) -> Page:
        """Polls every shard without blocking (then waits up to 0.2 s when none had
        anything): for tools like ``notify tail``. The hub tails each shard itself."""
        at = list(self.positions.parse(after))
        pages = await asyncio.gather(
            *(s.history([">"], id_text(at[i]), count) for i, s in enumerate(self.shards))
        )
        if not any(p.entries for p in pages):
            await asyncio.sleep(min(block_ms, 200) / 1000)
            return Page([], None)
        entries: list[Entry] = []
        for i, page in enumerate(pages):
            if page.entries:
                at[i] = parse_id(page.entries[-1].id)
            entries += [e for e in page.entries if wanted is None or wanted(e.channel.encode())]
        entries.sort(key=lambda e: parse_id(e.id))
        return Page(entries, self.positions.encode(at))


def open_log(
    client: aioredis.Redis,
    retention: Retention,
    shards: int = 1,
    reader: Callable[[], aioredis.Redis] | None = None,
    *,
    min_replicas: int = 0,
    wait_ms: int = 1000,
) -> RedisEventLog | ShardedEventLog:
    """The event log of ``shards`` shards; ``reader`` makes each shard's blocking
    reader its own client (the hub's)."""
    logs = [
        RedisEventLog(
            client,
            retention,
            reader() if reader is not None else None,
            min_replicas=min_replicas,
            wait_ms=wait_ms,
            shard=keys.shard(i, shards),
        )
        for i in range(shards)
    ]
    return logs[0] if shards == 1 else ShardedEventLog(logs)


def recorded_shards(client: SyncRedis) -> int:
    """The shard count the store's log is written with (a producer follows it); a store
    no role has recorded it in yet is recorded as one shard, so that a gateway started
    later with another number refuses to start rather than miss these events."""
    client.set(keys.SHARDS, 1, nx=True)
    return int(client.get(keys.SHARDS) or 1)


async def recorded_shards_async(client: aioredis.Redis) -> int:
    await client.set(keys.SHARDS, 1, nx=True)
    return int(await client.get(keys.SHARDS) or 1)


def verify_shards(url: str, shards: int, timeout: float = 3.0) -> None:
    """At start-up: the number of shards the log was written with is recorded in Redis
    (``keys.SHARDS``, by the first role to start); a role configured with another
    number would lose events between shards it does not read, so it is refused
    (ConfigError naming NOTIFY_SHARDS). An unreachable Redis is not checked here."""
    from notify.errors import ConfigError
    from notify.redis.client import sync_client
    from notify.redis.errors import REDIS_ERRORS

    try:
        client = sync_client(url, timeout=timeout)  # a cluster's reads its slot map here
    except REDIS_ERRORS:
        return
    try:
        client.set(keys.SHARDS, shards, nx=True)
        recorded = client.get(keys.SHARDS)
    except REDIS_ERRORS:
        return
    finally:
        client.close()
    if recorded is not None and int(recorded) != shards:
        raise ConfigError(
            "NOTIFY_SHARDS",
            f"the event log was written with {int(recorded)} shard(s), not {shards}: set"
            f" NOTIFY_SHARDS={int(recorded)} (changing it needs an empty store)",
        )


@dataclass(frozen=True, slots=True)
class StreamInfo:
    first: tuple[int, int]
    """The first kept id (or just past the last one when the stream is empty)."""
    last: tuple[int, int]
    trimmed: bool
    """Whether anything was ever removed from the stream."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.asynccontextmanager
async def connect(url: str, *, block_ms: int = 0) -> AsyncIterator[aioredis.Redis]:
    """A client whose deadline outlives a blocking read of ``block_ms``."""
    client = async_client(url, block_seconds=block_ms / 1000)
    try:
        yield client
    finally:
        await client.aclose()


__all__ = [
    "TRANSIENT",
    "NoScriptError",
    "RedisEventLog",
    "Retention",
    "ShardedEventLog",
    "connect",
    "open_log",
    "recorded_shards",
    "recorded_shards_async",
    "translated",
    "verify_shards",
]
