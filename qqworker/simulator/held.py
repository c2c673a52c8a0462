"""Connections accepted during a black hole: read and kept, never answered.

When the black hole ends a held connection is handed to the real HTTP server with what it sent, as a client
whose packets were only delayed would see it; at shutdown it is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["HeldConnection"]

MAX_HELD_BYTES = 1 << 20


class HeldConnection(asyncio.Protocol):
    def __init__(self, registry: set[HeldConnection]) -> None:
        self._registry = registry
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        if len(self.buffer) + len(data) > MAX_HELD_BYTES:
            self.drop()
            return
        self.buffer += data

    def eof_received(self) -> bool:
        self.eof = True
        return True  # keep our side open: closing it would be an answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self.transport = None

    def release(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        """Serve the connection for real, starting with the bytes it sent while held."""
        transport = self.transport
        self._registry.discard(self)
        if transport is None or transport.is_closing():
            return
        if self.eof:  # the client gave up already
            transport.abort()
            return
        protocol = protocol_factory()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buffer:
            protocol.data_received(bytes(self.buffer))
        self.buffer.clear()

    def drop(self) -> None:
        self._registry.discard(self)
        if self.transport is not None:
            self.transport.abort()
