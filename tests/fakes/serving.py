"""What every loopback fake's main() does once its server is bound: publish
the port (atomically: the test that started the fake waits for the file),
say where it listens, wait for SIGTERM or SIGINT, stop the server, and
remove the port file."""
import os
import signal
import threading


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
