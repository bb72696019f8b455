"""What one inbound message is: heartbeat pong, client ping, late data, over a limit, or data."""

from __future__ import annotations

from starlette.types import Message

from asgi_ws_stabilizer.core.inbound import Inbound, InboundRules
from asgi_ws_stabilizer.core.ratelimit import TokenBucket

PING = "ping!"
PONG = "pong!"


def rules(*, heartbeat_on: bool = True, max_size: int | None = None) -> InboundRules:
    """Rules with our own heartbeat texts."""
    return InboundRules(ping=PING, pong=PONG, heartbeat_on=heartbeat_on, max_size=max_size)


def text(value: str) -> Message:
    """A text ``websocket.receive``."""
    return {"type": "websocket.receive", "text": value}


def binary(value: bytes) -> Message:
    """A bytes ``websocket.receive``."""
    return {"type": "websocket.receive", "bytes": value}


def empty_bucket() -> TokenBucket:
    """A bucket with no token left at time 0 (and none coming back)."""
    bucket = TokenBucket(rate=0.0, burst=1, now=0.0)
    assert bucket.allow(0.0)
    return bucket


# -- heartbeat texts ----------------------------------------------------------------------------


def test_the_pong_text_is_a_pong_while_beating() -> None:
    """Our pong text on a beating socket is our heartbeat's answer, hidden from the app."""
    assert rules().classify(text(PONG), 0.0, None, beating=True, closing=False) == (
        Inbound.PONG,
        0,
    )


def test_the_pong_text_is_data_when_not_beating() -> None:
    """Without our heartbeat on this socket the pong text is the app's data."""
    assert rules().classify(text(PONG), 0.0, None, beating=False, closing=False) == (
        Inbound.DATA,
        len(PONG),
    )


def test_a_pong_takes_no_token() -> None:
    """A heartbeat pong is not counted against the rate limit."""
    bucket = TokenBucket(rate=0.0, burst=1, now=0.0)
    r = rules()
    assert r.classify(text(PONG), 0.0, bucket, beating=True, closing=False)[0] is Inbound.PONG
    assert r.classify(text("x"), 0.0, bucket, beating=True, closing=False) == (Inbound.DATA, 1)


def test_a_client_ping_is_answered_when_the_heartbeat_is_on() -> None:
    """The ping text with the heartbeat on is the client's heartbeat, answered and hidden."""
    assert rules().classify(text(PING), 0.0, None, beating=False, closing=False) == (
        Inbound.PING,
        0,
    )


def test_a_client_ping_is_data_when_the_heartbeat_is_off() -> None:
    """With the heartbeat off the ping text is ordinary data."""
    r = rules(heartbeat_on=False)
    assert r.classify(text(PING), 0.0, None, beating=False, closing=False) == (
        Inbound.DATA,
        len(PING),
    )


def test_the_ping_text_as_bytes_is_data() -> None:
    """Only a text frame is a heartbeat: the same bytes in a binary frame are data."""
    r = rules()
    assert r.classify(binary(PING.encode()), 0.0, None, beating=True, closing=False) == (
        Inbound.DATA,
        len(PING),
    )


# -- closing ------------------------------------------------------------------------------------


def test_data_while_closing_is_late() -> None:
    """Data after the close began is late, text or bytes, and unsized."""
    r = rules(max_size=1)
    for message in (text("hello"), binary(b"hello")):
        assert r.classify(message, 0.0, None, beating=True, closing=True) == (Inbound.LATE, 0)


def test_a_ping_is_still_answered_while_closing() -> None:
    """A client ping during the close is still a ping, and a pong still a pong."""
    r = rules()
    assert r.classify(text(PING), 0.0, None, beating=True, closing=True) == (Inbound.PING, 0)
    assert r.classify(text(PONG), 0.0, None, beating=True, closing=True) == (Inbound.PONG, 0)


def test_late_data_is_not_rate_limited() -> None:
    """Late data neither takes a token nor is refused for lack of one."""
    r = rules()
    assert r.classify(text("x"), 0.0, empty_bucket(), beating=False, closing=True) == (
        Inbound.LATE,
        0,
    )


# -- rate limit ---------------------------------------------------------------------------------


def test_data_over_the_rate_limit_is_refused() -> None:
    """Data beyond the bucket's burst is rate limited; a refilled bucket lets it through again."""
    bucket = TokenBucket(rate=1.0, burst=2, now=0.0)
    r = rules()
    kinds = [r.classify(text("x"), 0.0, bucket, beating=False, closing=False) for _ in range(3)]
    assert kinds == [(Inbound.DATA, 1), (Inbound.DATA, 1), (Inbound.RATE_LIMITED, 0)]
    assert r.classify(text("x"), 1.0, bucket, beating=False, closing=False) == (Inbound.DATA, 1)


def test_a_ping_flood_is_rate_limited() -> None:
    """Client pings take tokens like data, and are refused once the bucket is empty."""
    bucket = TokenBucket(rate=0.0, burst=2, now=0.0)
    r = rules()
    kinds = [r.classify(text(PING), 0.0, bucket, beating=False, closing=False)[0] for _ in range(3)]
    assert kinds == [Inbound.PING, Inbound.PING, Inbound.RATE_LIMITED]


def test_pings_and_data_share_the_bucket() -> None:
    """A ping spends the token the next data message would have had."""
    bucket = TokenBucket(rate=0.0, burst=1, now=0.0)
    r = rules()
    assert r.classify(text(PING), 0.0, bucket, beating=False, closing=False)[0] is Inbound.PING
    assert r.classify(text("x"), 0.0, bucket, beating=False, closing=False) == (
        Inbound.RATE_LIMITED,
        0,
    )


def test_a_ping_while_closing_is_rate_limited_too() -> None:
    """The close does not exempt a ping flood from the rate limit."""
    r = rules()
    assert r.classify(text(PING), 0.0, empty_bucket(), beating=False, closing=True) == (
        Inbound.RATE_LIMITED,
        0,
    )


# -- size ---------------------------------------------------------------------------------------


def test_data_reports_its_size() -> None:
    """Data comes with its payload size: text length, bytes length, nothing for neither."""
    r = rules()
    assert r.classify(text("hello"), 0.0, None, beating=False, closing=False) == (Inbound.DATA, 5)
    assert r.classify(binary(b"\x00" * 7), 0.0, None, beating=False, closing=False) == (
        Inbound.DATA,
        7,
    )
    assert r.classify({"type": "websocket.receive"}, 0.0, None, beating=False, closing=False) == (
        Inbound.DATA,
        0,
    )


def test_non_ascii_text_is_sized_in_utf8_bytes() -> None:
    """``é`` is two bytes and ``€`` three: the size is the UTF-8 length, not the characters."""
    r = rules()
    assert r.classify(text("é€"), 0.0, None, beating=False, closing=False) == (Inbound.DATA, 5)


def test_text_over_max_size_is_too_big_with_its_size() -> None:
    """Text one byte over the limit is too big, and reports its size."""
    r = rules(max_size=4)
    assert r.classify(text("abcd"), 0.0, None, beating=False, closing=False) == (Inbound.DATA, 4)
    assert r.classify(text("abcde"), 0.0, None, beating=False, closing=False) == (
        Inbound.TOO_BIG,
        5,
    )


def test_non_ascii_text_is_measured_in_bytes_against_max_size() -> None:
    """Three characters of six UTF-8 bytes pass a six-byte limit and fail a five-byte one."""
    message = text("ééé")
    assert rules(max_size=6).classify(message, 0.0, None, beating=False, closing=False) == (
        Inbound.DATA,
        6,
    )
    assert rules(max_size=5).classify(message, 0.0, None, beating=False, closing=False) == (
        Inbound.TOO_BIG,
        6,
    )


def test_a_bytes_frame_over_max_size_is_too_big() -> None:
    """A binary frame is held to the same limit."""
    r = rules(max_size=4)
    assert r.classify(binary(b"12345"), 0.0, None, beating=False, closing=False) == (
        Inbound.TOO_BIG,
        5,
    )


def test_the_rate_limit_is_checked_before_the_size() -> None:
    """A too-big message over the rate limit is rate limited."""
    r = rules(max_size=1)
    assert r.classify(text("too big"), 0.0, empty_bucket(), beating=False, closing=False) == (
        Inbound.RATE_LIMITED,
        0,
    )


def test_a_too_big_message_takes_a_token() -> None:
    """A message refused for its size still spent its token."""
    bucket = TokenBucket(rate=0.0, burst=1, now=0.0)
    r = rules(max_size=1)
    assert r.classify(text("ab"), 0.0, bucket, beating=False, closing=False)[0] is Inbound.TOO_BIG
    assert r.classify(text("a"), 0.0, bucket, beating=False, closing=False)[0] is (
        Inbound.RATE_LIMITED
    )
