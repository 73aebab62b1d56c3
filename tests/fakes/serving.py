"""What the loopback fakes share: an HTTP server bound on host:port and
served from a daemon thread (InProcessServer, for fakes that tests also run
in-process), and what every fake's main() does once bound: publish the port
(atomically: the test that started the fake waits for the file), say where
it listens, wait for SIGTERM or SIGINT, stop the server, and remove the
port file."""
import os
import signal
import threading
from http.server import ThreadingHTTPServer


class InProcessServer:
    """Bind at once (port 0: any free port); start() serves, stop() closes."""

    def bind(self, host, port, handler_class):
        self.server = ThreadingHTTPServer((host, port), handler_class)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d" % (host, self.port)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def serve_until_signalled(url, port, port_file, stop_server):
    """Block until SIGTERM/SIGINT, then call stop_server()."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if port_file:
        write_port_file(port_file, port)
    print("listening on %s" % url, flush=True)
    while not stop.wait(0.5):
        pass
    stop_server()
    if port_file:
        try:
            os.remove(port_file)
        except OSError:
            pass
