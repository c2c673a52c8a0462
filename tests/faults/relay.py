"""A TCP relay between a client and the simulator, for the faults a link can have that the simulator
cannot play itself (tc netem is not available here):

- `hold(True)`: every connection, present and future, is accepted and kept but no byte moves either
  way, as a stalled server or a black-holed path looks to a client (a timeout, not an error);
- `delay_s`: every byte leaves that long after it arrived, each way, in order (settable while running).

It runs its own event loop on a thread; started from a thread that joined a network namespace, it
listens in that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["Relay"]


class Relay:
    def __init__(
        self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0), delay_s: float = 0.0
    ) -> None:
        self.target, self.listen, self.delay_s = target, listen, delay_s
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10) or self._server is None:
            raise RuntimeError("the relay did not start")
        self.port: int = self._server.sockets[0].getsockname()[1]

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing.set()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, *self.listen))
        started.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._flowing.wait()
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        pipes = [asyncio.ensure_future(self._pipe(reader, up_writer)),
                 asyncio.ensure_future(self._pipe(up_reader, writer))]  # fmt: skip
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(OSError, RuntimeError):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Each chunk leaves `delay_s` after it arrived, in order (a queue, so delays do not add up),
        and only while the relay flows."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    return
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay_s, data))
            queue.put_nowait((loop.time() + self.delay_s, b""))
            await sender
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def hold(self, held: bool) -> None:
        """Stall (True) or resume (False) every connection, present and future."""
        self._loop.call_soon_threadsafe(self._flowing.clear if held else self._flowing.set)

    def close(self) -> None:
        def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in self._tasks:
                task.cancel()
            for writer in list(self._writers):
                writer.transport.abort()
            self._flowing.set()
            self._loop.call_later(0.2, self._loop.stop)

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)
