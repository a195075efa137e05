"""The index steps of writes and invalidations (see ``indexes`` for the design): writing
entries with their memberships, finding an index's shards, draining them in bounded
atomic batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..execution import Pipe, Script, Steps, Unavailable
from ..indexes import (
    DRAIN_BATCH,
    ENTRIES_PER_SCRIPT,
    FIRST_PIPE,
    FULL_PIPE,
    MAX_DRAINS,
    ROOT_RECORD,
    ROOT_SHARD,
    TAG_RECORD,
    TAG_SHARD,
    IncompleteInvalidation,
    Lives,
    Names,
    extended,
    forget_lives,
    forget_pairs,
    lex_range,
    names,
    needed_records,
    record_px,
    remember_records,
    shard_px,
    slot_of,
    slots_of,
    sweep_rank,
    to_bytes,
)
from ..replies import PARSE_ERRORS, unreadable
from ..scripts import DRAIN, RECORD, WRITE, WRITE_ONE
from .multi import Rerun, Scripts, SlotTx, SlotTxs, Tx

if TYPE_CHECKING:
    from ..protocol import Backend


def record_calls(pairs: Iterable[tuple[str, int]], px: int | None) -> list[tuple[Any, ...]]:
    """One ``RECORD`` script call per record for ``pairs``."""
    by_record: dict[str, list[int]] = {}
    for record, slot in pairs:
        by_record.setdefault(record, []).append(slot)
    life = 0 if px is None else record_px(px)
    return [(RECORD, [record], [life, *slots]) for record, slots in by_record.items()]


def lasting(cache: Backend, key: Any, full: str, life: int | None) -> list[tuple[Any, ...]]:
    """What makes the root index of ``key`` (and on a Cluster its slot's record) live as
    long as its entry will now: ``life`` ms, None for always. Nothing for an untracked
    key, or a life that deletes the entry."""
    if (life is not None and life <= 0) or not cache.options.track_writes:
        return []
    n = names(cache)
    root = n.root_of(key if type(key) is str else str(key))
    if not root:
        return []
    if not n.sharded():
        return [("PEXPIRE", n.shard(ROOT_SHARD, root, None), shard_px(life), "GT")]
    slot = slot_of(to_bytes(full))
    record = n.record(ROOT_RECORD, root)
    return [
        ("PEXPIRE", n.shard(ROOT_SHARD, root, slot), shard_px(life), "GT"),
        ("PERSIST", record) if life is None else ("PEXPIRE", record, record_px(life), "GT"),
    ]


def one_args(
    n: Names, value: Any, member: str, px: int | None, mode: str, push: str, sweep: float, skip: str
) -> list[Any]:
    """``WRITE_ONE``'s arguments: one entry in one shard (``skip``: "<root><sep>")."""
    life = shard_px(px)
    args = [value, member, f"-{life}" if push == "1" else life, px or 0, mode]
    if sweep >= 0:
        args += [sweep, n.base, n.sep, skip]
    return args


# An entry to write: (user key as text, full Redis key, encoded value, version).
Item = tuple[str, str, Any, int]


class Indexed:
    """One entry written with its index memberships in one atomic request, and what this
    process remembers after. The commonest case (one index, a plain write, nothing to
    sweep) is a transaction (``one_tx``): SET and ZADD with the placeholder, and the
    shard's expiry only when this process has not set it lately; anything else is a
    script. On a Cluster the shards are the entry's slot's, the transaction goes as a
    ``SlotTxs`` (the script beside it for async clients), and ``ready`` says whether the
    slot's records are known to be written (else the write takes ``write``'s steps,
    which write them first)."""

    __slots__ = ("args", "keys", "push", "px", "records", "script", "slot", "tx")

    @classmethod
    def ready(
        cls, cache: Backend, item: Item, px: int | None, mode: str, tags: tuple[str, ...]
    ) -> Indexed | None:
        n = names(cache)
        root = n.root_of(item[0]) if cache.options.track_writes else None
        if not n.sharded():
            return cls(cache, n, item, root, px, mode, tags, None, [], sweep_rank(), True)
        slot = slot_of(to_bytes(item[1]))
        records = [(n.record(ROOT_RECORD, root), slot)] if root else []
        records += [(n.record(TAG_RECORD, tag), slot) for tag in tags]
        if needed_records(cache, records, px):
            return None
        return cls(cache, n, item, root, px, mode, tags, slot, records, sweep_rank(), True)

    def __init__(
        self,
        cache: Backend,
        n: Names,
        item: Item,
        root: str | None,
        px: int | None,
        mode: str,
        tags: tuple[str, ...],
        slot: int | None,
        records: list[tuple[str, int]],
        sweep: float,
        quick: bool = False,
        lives: Lives | None = None,
    ) -> None:
        key, full, value, version = item
        keys = [full, n.shard(ROOT_SHARD, root, slot)] if root else [full]
        if tags:
            keys += [n.shard(TAG_SHARD, tag, slot) for tag in tags]
        self.keys = keys
        self.px = px
        self.records = records
        self.push = push = (lives or Lives(cache, px)).push(keys[1:])
        self.tx: list[tuple[Any, ...]] | None = None
        # The slot a Cluster's transaction goes to (None: not a Cluster).
        self.slot = None if not n.cluster else slot_of(to_bytes(full)) if slot is None else slot
        if len(keys) == 2:  # the common case: one shard
            self.script = WRITE_ONE
            if root:
                member, skip = n.member(key, full, version, len(root) + len(n.sep)), root + n.sep
            else:
                member, skip = n.member(key, full, version, 0), ""
            if quick and not mode and sweep < 0:
                self.tx = one_tx(full, value, keys[1], member, px, push)
            if self.tx is None or n.cluster:
                self.args = one_args(n, value, member, px, mode, push, sweep, skip)
            return
        self.script = WRITE
        self.args = [*write_head(n, px, mode, sweep), *entry_args(n, item, root, tags, push)]

    def command(self) -> tuple[Any, ...] | Tx | SlotTx:
        """What a one-request operation sends: the transaction, or the ``EVALSHA``
        command."""
        if self.tx is not None:
            return self.transaction()
        return self.script.command(self.keys, self.args)

    def request(self) -> Tx | SlotTx | Script:
        if self.tx is not None:
            return self.transaction()
        return Script(self.script, self.keys, self.args)

    def transaction(self) -> Tx | SlotTx:
        assert self.tx is not None
        if self.slot is None:
            return Tx(self.tx)
        return SlotTx([self.slot_tx()], lambda: [self.call()])

    def slot_tx(self) -> tuple[int, list[tuple[Any, ...]]]:
        """Its transaction with the Cluster slot it goes to."""
        assert self.slot is not None and self.tx is not None
        return self.slot, self.tx

    def call(self) -> tuple[Any, ...]:
        """Its script call for ``Scripts`` (with its slot on a Cluster)."""
        return (self.script, self.keys, self.args, self.slot)

    def flag(self, reply: Any) -> int:
        """0 not stored, 1 stored, 2 stored in a new shard (the script's reply, or the
        transaction's: SET's, then ZADD's count of members added, the placeholder's
        too). A write sent again after a lost reply (``Rerun``) that stored counts as 2:
        its first run may have made the shard, then left it to be healed."""
        if type(reply) is Rerun:
            return 2 if self.flag(reply.reply) else 0
        if type(reply) is int:
            return reply
        if self.tx is not None:
            return 0 if not reply[0] else 2 if reply[1] == 2 else 1
        return int(reply[0])

    def stored(self, cache: Backend, reply: Any) -> bool:
        """Whether the entry was stored; remembers the shards' expiry when the request
        pushed it or made a shard."""
        flag = self.flag(reply)
        if flag == 2 or (flag and self.push == "1"):
            extended(cache, self.keys[1:], self.px)
        return bool(flag)

    def healing(self, cache: Backend, reply: Any) -> Steps[None] | None:
        """What a shard made anew by this write still needs, as steps (else None). On a
        Cluster, where this process believed the slot's records written (a flush behind
        its back), the records, which may be gone too. After a transaction that did not
        set the shard's expiry (this process believed the shard there), its expiry."""
        flag = self.flag(reply)
        if flag != 2:
            return None
        lifeless = self.unlived(flag)
        if not (self.records or lifeless):
            return None
        return _heal(cache, self.records, [self.keys[1]] if lifeless else [], self.px)

    def unlived(self, flag: int) -> bool:
        """Whether this write found its shard new (``flag`` 2) and, as a transaction that
        did not push the shard's expiry, left it without one."""
        return flag == 2 and self.tx is not None and self.push != "1"


def _heal(
    cache: Backend, records: list[tuple[str, int]], lifeless: list[str], px: int | None
) -> Steps[None]:
    """Shards a write found missing (flushed or deleted behind this process's back): an
    expiry for those its transaction left without one, then their slots' records."""
    if lifeless:
        yield from _given_lives(cache, lifeless, px)
    if records:
        yield from _record(cache, records, px)


def one_tx(
    full: str, value: Any, shard: str, member: str, px: int | None, push: str
) -> list[tuple[Any, ...]]:
    """``Indexed``'s transaction: the entry and its membership; when ``push`` is "1" (this
    process has not lately) the shard's expiry too: set if it has none (a new shard),
    pushed out if shorter. A shard found new otherwise gets it next (``healing``)."""
    commands: list[tuple[Any, ...]] = [
        ("SET", full, value) if px is None else ("SET", full, value, "PX", px),
        ("ZADD", shard, 0, "", 0, member),
    ]
    if push == "1":
        life = shard_px(px)
        commands += [("PEXPIRE", shard, life, "NX"), ("PEXPIRE", shard, life, "GT")]
    return commands


def _given_lives(cache: Backend, shards: list[str], px: int | None) -> Steps[None]:
    """Shards a transaction found missing get their expiry. Should that fail, the entries
    are stored all the same, and this process forgets the shards' lives so that its next
    write there sets them (as every process's first write after ``MEMO_SECONDS`` does)."""
    life = shard_px(px)
    try:
        yield Pipe([("PEXPIRE", shard, life, "NX") for shard in shards])
    except Unavailable:
        forget_lives(cache, shards)


def write_head(n: Names, px: int | None, mode: str, sweep: float) -> list[Any]:
    """``WRITE``'s arguments before its entries'."""
    return [px or 0, mode, sweep, n.base, n.sep, shard_px(px)]


def entry_args(
    n: Names, item: Item, root: str | None, tags: tuple[str, ...], push: str
) -> list[Any]:
    """One entry's arguments to ``WRITE`` (its shards are among the keys, root first)."""
    key, full, value, version = item
    sep = n.sep
    return [
        value,
        n.member(key, full, version, len(root) + len(sep)) if root else "",
        n.member(key, full, version, 0) if tags else "",
        f"{root}{sep}" if root else "",
        1 if root else 0,
        len(tags),
        push,
    ]


def _record(cache: Backend, pairs: list[tuple[str, int]], px: int | None) -> Steps[None]:
    calls = record_calls(pairs, px)
    try:
        yield Scripts(calls) if len(calls) > 1 else Script(*calls[0])
    except Unavailable:  # the records may be missing: the next write to a slot writes them
        forget_pairs(cache, pairs)
        raise
    remember_records(cache, pairs, px)


def write(
    cache: Backend, items: Sequence[Item], px: int | None, mode: str, tags: tuple[str, ...]
) -> Steps[list[bool]]:
    """Store ``items`` (``mode`` "", "NX" or "XX"), each with its index memberships in one
    atomic script; on a Cluster the slots' records first (when this process has not
    written them lately). Returns, per item, whether it was stored."""
    n = names(cache)
    track = cache.options.track_writes
    if len(items) == 1 and (one := Indexed.ready(cache, items[0], px, mode, tags)):
        reply = yield one.request()
        kept = one.stored(cache, reply)
        healing = one.healing(cache, reply)
        if healing is not None:
            yield from healing
        return [kept]
    roots = [n.root_of(key) if track else None for key, _, _, _ in items]
    sharded = n.sharded()
    slots = [slot_of(to_bytes(item[1])) for item in items] if sharded else [None] * len(items)
    groups: dict[int | None, list[int]] = {}
    wanted: list[tuple[str, int]] = []
    for at, slot in enumerate(slots):
        groups.setdefault(slot, []).append(at)
        if slot is not None:
            root = roots[at]
            if root:
                wanted.append((n.record(ROOT_RECORD, root), slot))
            wanted += [(n.record(TAG_RECORD, tag), slot) for tag in tags]
    needed: list[tuple[str, int]] = []
    if wanted:
        needed = needed_records(cache, wanted, px)
        if needed:
            calls = record_calls(needed, px)
            yield Scripts(calls) if len(calls) > 1 else Script(*calls[0])
            remember_records(cache, needed, px)
    sweep = sweep_rank()
    lives = Lives(cache, px)
    # Per entry written: its shards, and whether its write pushed their expiry out.
    shards_of: dict[int, tuple[list[str], str]] = {}
    lifeless: list[str] = []  # shards found new by a transaction that gave them no expiry
    if sharded and not tags and not mode and sweep < 0 and all(roots):
        # The commonest Cluster batch: one transaction per entry, on its slot's node.
        ones = [
            Indexed(cache, n, item, roots[at], px, mode, tags, slots[at], [], sweep, True, lives)
            for at, item in enumerate(items)
        ]
        replies = yield SlotTxs(
            [one.slot_tx() for one in ones], lambda: [one.call() for one in ones]
        )
        order: Sequence[int] = range(len(items))
        flags = [one.flag(reply) for one, reply in zip(ones, replies, strict=True)]
        for at, (one, flag) in enumerate(zip(ones, flags, strict=True)):
            shards_of[at] = (one.keys[1:], one.push)
            if one.unlived(flag):
                lifeless.append(one.keys[1])
    else:
        calls, order = _scripted(
            cache, n, items, roots, groups, px, mode, tags, sweep, lives, shards_of
        )
        if len(calls) == 1:
            replies = [(yield Script(*calls[0][:3]))]
        else:
            replies = yield Scripts(calls)
        flags = [f for reply in replies for f in ((reply,) if type(reply) is int else reply)]
    stored = [False] * len(items)
    new: list[int] = []
    lived: dict[str, None] = {}
    for at, flag in zip(order, flags, strict=True):
        stored[at] = bool(flag)
        if flag == 2:
            new.append(at)
        if flag == 2 or (flag and shards_of[at][1] == "1"):
            lived.update(dict.fromkeys(shards_of[at][0]))
    if lived:
        extended(cache, lived, px)
    if lifeless:
        yield from _given_lives(cache, lifeless, px)
    if new and sharded:
        # A shard this process believed recorded was missing (flushed, say): its record
        # may be gone too, so it is written again before the write returns.
        done = set(needed)
        heal = []
        for at in new:
            slot = slot_of(to_bytes(items[at][1]))
            root = roots[at]
            pairs = [(n.record(TAG_RECORD, tag), slot) for tag in tags]
            if root:
                pairs.append((n.record(ROOT_RECORD, root), slot))
            heal += [pair for pair in pairs if pair not in done]
        if heal:
            yield from _record(cache, list(dict.fromkeys(heal)), px)
    return stored


def _scripted(
    cache: Backend,
    n: Names,
    items: Sequence[Item],
    roots: list[str | None],
    groups: dict[int | None, list[int]],
    px: int | None,
    mode: str,
    tags: tuple[str, ...],
    sweep: float,
    lives: Lives,
    shards_of: dict[int, tuple[list[str], str]],
) -> tuple[list[tuple[Any, ...]], list[int]]:
    """``write``'s script calls (with their slot) and the entries in their replies' order;
    fills ``shards_of``. A slot's entries share scripts of ``ENTRIES_PER_SCRIPT``."""
    calls: list[tuple[Any, ...]] = []
    order: list[int] = []
    for slot, ats in groups.items():
        if len(ats) == 1:  # one entry (a Cluster spreads a batch over its slots)
            at = ats[0]
            one = Indexed(
                cache, n, items[at], roots[at], px, mode, tags, slot, [], sweep, lives=lives
            )
            shards_of[at] = (one.keys[1:], one.push)
            calls.append(one.call())
            order.append(at)
            continue
        tag_shards = [n.shard(TAG_SHARD, tag, slot) for tag in tags]
        for start in range(0, len(ats), ENTRIES_PER_SCRIPT):
            chunk = ats[start : start + ENTRIES_PER_SCRIPT]
            keys = []
            args = write_head(n, px, mode, sweep)
            pushes: dict[tuple[str, ...], str] = {}
            for at in chunk:
                root = roots[at]
                keys.append(items[at][1])
                mine = list(tag_shards)
                if root:
                    mine.insert(0, n.shard(ROOT_SHARD, root, slot))
                keys += mine
                push = pushes.get(tuple(mine), "")
                if not push:
                    push = pushes[tuple(mine)] = lives.push(mine)
                shards_of[at] = (mine, push)
                args += entry_args(n, items[at], root, tags, push)
            calls.append((WRITE, keys, args, slot))
            order += chunk
    return calls, order


# A shard to drain: (shard key, lex min, lex max, "<root><sep>" or "").
Shard = tuple[str, str, str, str]


def shards(cache: Backend, targets: Sequence[tuple[str, str, str, str]]) -> Steps[list[Shard]]:
    """The shards of ``targets`` ``(shard kind, record kind, root or tag, rest)``: one
    each on a single server; on a Cluster one per slot its record lists."""
    n = names(cache)
    out: list[Shard] = []
    slots: list[list[int | None]] = [[None]] * len(targets)
    if n.sharded():
        records = [n.record(record, name) for _, record, name, _ in targets]
        replies = yield Pipe([("GET", record) for record in records])
        slots = [[*slots_of(reply or b"")] for reply in replies]
    for (kind, _, name, rest), used in zip(targets, slots, strict=True):
        low, high = lex_range(rest, n.sep)
        skip = f"{name}{n.sep}" if kind == ROOT_SHARD else ""
        out += [(n.shard(kind, name, slot), low, high, skip) for slot in used]
    return list(dict.fromkeys(out))


def drain(
    cache: Backend, targets: Sequence[Shard], keys_wanted: bool
) -> Steps[tuple[int, list[Any]]]:
    """Delete every entry the shards hold in their ranges; ``(keys deleted, the keys if
    wanted)``. A shard is drained again while it hands back full batches; a cut reply
    raises (through the executor) and leaves only whole batches done."""
    n = names(cache)
    want = "1" if keys_wanted else "0"
    deleted = 0
    gone: list[Any] = []
    pending = list(targets)
    per_pipe = FIRST_PIPE
    for _ in range(MAX_DRAINS):
        if not pending:
            return deleted, gone
        again: list[Shard] = []
        for start in range(0, len(pending), per_pipe):
            chunk = pending[start : start + per_pipe]
            calls = [
                (DRAIN, [shard], [low, high, DRAIN_BATCH, n.base, n.sep, skip, want])
                for shard, low, high, skip in chunk
            ]
            if len(calls) == 1:
                replies = [(yield Script(*calls[0]))]
            else:
                replies = yield Scripts(calls)
            for target, reply in zip(chunk, replies, strict=True):
                try:
                    count, full = int(reply[1]), int(reply[0]) >= DRAIN_BATCH
                except PARSE_ERRORS:
                    raise Unavailable(unreadable("DRAIN", reply)) from None
                deleted += count
                gone += reply[2:]
                if full:
                    again.append(target)
        pending = again
        per_pipe = FULL_PIPE
    raise Unavailable(
        IncompleteInvalidation(
            f"{len(pending)} index shard(s) still full after {MAX_DRAINS} batches: writers "
            "add entries as fast as they are deleted; run the invalidation again"
        )
    )
