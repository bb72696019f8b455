"""Hub sends across 3 worker processes sharing one Redis: every target once, in order."""

from __future__ import annotations

from collections.abc import Iterable

from ..timing import t
from .conftest import StartCluster
from .listeners import Listener, listen_all
from .waits import eventually

CLIENTS = 100


def groups_of(i: int) -> list[str]:
    """Client ``c{i}``'s groups: ``even`` for even i, ``tens`` for multiples of 10."""
    return [g for g, member in (("even", i % 2 == 0), ("tens", i % 10 == 0)) if member]


class Ledger:
    """What each listener should have received so far, in order."""

    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners
        self.expected: dict[Listener, list[str]] = {x: [] for x in listeners}
        self.close_codes: dict[Listener, tuple[int, str]] = {}

    def open(self) -> list[Listener]:
        return [x for x in self.listeners if x not in self.close_codes]

    def expect(self, message: str, targets: list[Listener]) -> list[Listener]:
        """``message`` is due at ``targets``; returns them."""
        for x in targets:
            self.expected[x].append(message)
        return targets

    async def delivered(self, targets: Iterable[Listener], what: str) -> None:
        """Wait until every listener has exactly what it should (bounded)."""
        targets = list(targets)

        async def check() -> None:
            late = [x for x in targets if x.frames != self.expected[x]]
            assert not late, f"{what}: {len(late)} sockets differ, e.g. {late[0]!r}: " + (
                f"got {late[0].frames[-5:]}, want {self.expected[late[0]][-5:]}"
            )

        await eventually(check, t(3))

    def verify(self) -> None:
        """Every listener got exactly its messages, in order; closed ones with their code."""
        for x in self.listeners:
            assert x.frames == self.expected[x], x
            if x in self.close_codes:
                assert x.closed.is_set(), x
                assert (x.close_code, x.close_reason) == self.close_codes[x], x
            else:
                assert x.open, (x, x.close_code)


async def test_each_process_reaches_exactly_the_targets_on_every_process(
    cluster: StartCluster,
) -> None:
    """broadcast, publish, send_to and close called on each of 3 processes reach every target
    socket on every process once (the caller's own included) and no excluded one."""
    c = await cluster(3)
    workers = c.workers
    specs = [(w, f"c{i}", groups_of(i)) for i in range(CLIENTS) for w in workers]
    listeners = await listen_all(specs)
    assert len(listeners) == 3 * CLIENTS
    ledger = Ledger(listeners)
    socket = {(x.client_id, x.worker.name): x for x in listeners}

    for p, sender in enumerate(workers):
        # broadcast: leave out one client (3 sockets) and two single sockets by connection id,
        # one of them on the sending process.
        away = socket[(f"c{20 + p}", workers[(p + 1) % 3].name)]
        own = socket[(f"c{30 + p}", sender.name)]
        excluded = {f"c{10 + p}", away.connection_id, own.connection_id}
        message = f"broadcast from {p}"
        targets = ledger.expect(
            message,
            [
                x
                for x in ledger.open()
                if x.client_id not in excluded and x.connection_id not in excluded
            ],
        )
        await c.broadcast(sender, message, exclude=excluded)
        await ledger.delivered(targets, message)

        # publish: the group, but one member client.
        left_out = f"c{2 * (20 + p)}"
        message = f"publish from {p}"
        targets = ledger.expect(
            message, [x for x in ledger.open() if "even" in x.groups and x.client_id != left_out]
        )
        await c.publish(sender, "even", message, exclude=[left_out])
        await ledger.delivered(targets, message)
        message = f"tens from {p}"
        targets = ledger.expect(message, [x for x in ledger.open() if "tens" in x.groups])
        await c.publish(sender, "tens", message)
        await ledger.delivered(targets, message)

        # send_to: the client's socket on every process; nobody for an offline client.
        target_id = f"c{40 + p}"
        message = f"direct from {p}"
        targets = ledger.expect(message, [x for x in ledger.open() if x.client_id == target_id])
        assert len(targets) == 3
        assert await c.send_to(sender, target_id, message) == 3
        assert await c.send_to(sender, "offline", "for nobody") == 0
        await ledger.delivered(targets, message)

        # close: the client's socket on every process, with the code and reason given.
        closing = f"c{90 + p}"
        for x in ledger.open():
            if x.client_id == closing:
                ledger.close_codes[x] = (4000 + p, f"bye {p}")
        assert await c.close_client(sender, closing, 4000 + p, f"bye {p}") == 3
        assert await c.close_client(sender, "offline", 4000, "nobody") == 0

        async def closed(closing: str = closing) -> None:
            still = [x for x in listeners if x.client_id == closing and x.open]
            assert not still, still

        await eventually(closed, t(3))

    # Last, a marker from each process after everything else it sent: nothing more arrives.
    for p, sender in enumerate(workers):
        message = f"end {p}"
        await c.broadcast(sender, message)
        await ledger.delivered(ledger.expect(message, ledger.open()), message)
    ledger.verify()


async def test_5000_messages_arrive_in_order_on_every_process(cluster: StartCluster) -> None:
    """5,000 numbered broadcasts and group publishes from one process reach every socket on
    every process in order, with no gap and no duplicate."""
    c = await cluster(3)
    n = 5000
    specs = [(w, f"o{w.name}-{k}", ["g"] if k % 2 else []) for w in c.workers for k in range(4)]
    listeners = await listen_all(specs)
    burst = await c.burst(c.workers[0], n=n, mix_group="g")
    assert burst["sent"] == n
    assert burst["errors"] == []
    await c.broadcast(c.workers[0], "end")

    async def all_ended() -> None:
        waiting = [x for x in listeners if x.frames[-1:] != ["end"]]
        assert not waiting, f"{len(waiting)} sockets wait for the end, e.g. {waiting[0]!r}"

    await eventually(all_ended, t(20), interval=0.1)
    everyone = [str(i) for i in range(0, n, 2)]  # the broadcasts
    members = [str(i) for i in range(n)]  # the broadcasts and the group's publishes
    for x in listeners:
        assert x.frames[:-1] == (members if "g" in x.groups else everyone), (x, len(x.frames))
