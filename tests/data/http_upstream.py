#!/usr/bin/python3
"""An HTTP/1.1 upstream for the gateway tests.

Prints "port N" once listening (port 0 picks a free one), then serves:
  .../status/NNN     answers NNN with a JSON body
  .../slow/MS        waits MS milliseconds, then answers 200
  .../close          answers 200 with Connection: close
  anything else      200 with JSON: the request as received (method, path,
                     headers, body), the server's name and port
Stops on SIGTERM.
"""
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status = 200
        close = False
        path = self.path.split("?")[0]
        parts = path.split("/")
        if "status" in parts[:-1]:
            status = int(parts[parts.index("status") + 1])
        elif "slow" in parts[:-1]:
            time.sleep(int(parts[parts.index("slow") + 1]) / 1000.0)
        elif "close" in parts:
            close = True
        doc = {
            "server": NAME,
            "port": self.server.server_address[1],
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "connection_requests": getattr(self, "_count", 0),
        }
        out = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", NAME)
        self.send_header("Keep-Alive", "timeout=5")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.command == "HEAD":
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("port %d" % server.server_address[1], flush=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
