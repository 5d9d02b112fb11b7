"""Reading request headers straight from the ASGI scope, as the hot path does."""

from __future__ import annotations

from starlette.datastructures import Headers

from governance.kit.middleware import header, source_of

SCOPE = {
    "type": "http",
    "client": ("10.1.2.3", 5555),
    "headers": [
        (b"content-length", b"12"),
        (b"authorization", b"Bearer first"),
        (b"user-agent", b"probe/1.0"),
        (b"authorization", b"Bearer second"),
    ],
}


def test_the_first_value_as_starlette_reads_it() -> None:
    for name in ("authorization", "content-length", "user-agent", "x-missing"):
        expected = Headers(scope=SCOPE).get(name)
        found = header(SCOPE, name.encode())
        assert (found.decode("latin-1") if found is not None else None) == expected


def test_source_of_a_request() -> None:
    source = source_of(SCOPE)
    assert (source.ip, source.user_agent) == ("10.1.2.3", "probe/1.0")
    bare = source_of({"type": "http", "headers": []})
    assert (bare.ip, bare.user_agent) == (None, None)
