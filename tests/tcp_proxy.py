"""A TCP proxy on loopback for fault tests: cut the link to a service, restore it, or slow it down."""

import asyncio
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target. cut() drops every connection and refuses new ones;
    restore() accepts again; `delay` holds every chunk that many seconds."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.delay = 0.0
        self._cut = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> "TcpProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    async def _serve(self):
        self._server = await asyncio.start_server(self._handle, sock=self._sock)

    async def _handle(self, reader, writer):
        if self._cut.is_set():
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader, writer):
        try:
            while not self._cut.is_set() and (data := await reader.read(65536)):
                if self.delay:
                    await asyncio.sleep(self.delay)  # the fault being simulated: a slow network
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    def cut(self) -> None:
        self._cut.set()

        def close_all():
            for writer in list(self._writers):
                writer.transport.abort()

        self._loop.call_soon_threadsafe(close_all)

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self.cut()

        async def shutdown():
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
