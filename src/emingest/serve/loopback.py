"""``emingest serve``'s application under a real uvicorn on 127.0.0.1, port 0, in a thread: for
tests and benchmarks (the server a user runs, not a test client)."""

from __future__ import annotations

import threading
import time
from typing import Any

from emingest.config import Settings


class ApiServer:
    """``with ApiServer(settings) as srv: requests.get(srv.url + "/api/records")``."""

    def __init__(
        self, settings: Settings, *, start_jobs: bool = True, log_level: str = "warning"
    ) -> None:
        import uvicorn

        from emingest.serve import create_app

        self.settings = settings
        self.app = create_app(settings, start_jobs=start_jobs)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level=log_level)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self, timeout_s: float = 20.0) -> ApiServer:
        self._thread = threading.Thread(target=self.server.run, name="emingest-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
