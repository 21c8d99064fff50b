"""A folder served over HTTP on 127.0.0.1 by the standard library, as Zenodo serves IRMAS:
with range requests answered, so an interrupted download can continue. For the tests of the
download path, `/cut/<file>` announces the whole file but sends half of it, and
`/norange/<file>` ignores ranges; `/huge/<file>` announces a petabyte to HEAD requests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path


class Handler(http.server.SimpleHTTPRequestHandler):
    hits: list[tuple[str, str | None]] = []  # (path, Range header) of every request

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        wanted = self.headers.get("Range")
        Handler.hits.append((self.path, wanted))
        name = self.path.removeprefix("/cut/").removeprefix("/norange/").lstrip("/")
        file = Path(self.directory, name)
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1]) if wanted else 0
        if start and not self.path.startswith("/norange/"):
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path.startswith("/cut/") else body)
        self.wfile.flush()
        self.close_connection = True

    def do_HEAD(self):
        Handler.hits.append(("HEAD " + self.path, None))
        if self.path.startswith("/huge/"):
            self.send_response(200)
            self.send_header("Content-Length", str(10**15))
            self.end_headers()
            return
        super().do_HEAD()


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve `folder` while the block runs; yields the base URL (no trailing slash)."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    # shutdown() waits for the loop's next poll: 0.5 s a test at the default interval
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    Handler.hits = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
