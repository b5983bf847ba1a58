"""A `runnel serve` process for the crash tests: started on a fixed Kafka port and data
directory (so a restart looks the same to clients), its log read by a thread so waiting has a
deadline, killed with SIGKILL or stopped with SIGTERM."""
import queue
import re
import signal
import socket
import subprocess
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `runnel serve`. `watch` (a callable) sees every log line; `http` is the gateway's
    address once ready."""

    def __init__(self, binary, data, port, watch=None):
        self.lines = queue.Queue()
        self.http = None
        self.watch = watch
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data, "--kafka-addr", f"127.0.0.1:{port}", "--http-addr", "127.0.0.1:0",
             "--shards", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            if self.watch:
                self.watch(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_ready(self, timeout=30, fail_on=None):
        """Returns once the server logged "ready in"; `fail_on(line)` true raises at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError("server exited before it was ready")
            if fail_on and fail_on(line):
                raise RuntimeError(line)
            if "ready in" in line:
                m = re.search(r"HTTP listener on (\S+)", line)
                self.http = m.group(1) if m else None
                return
        raise RuntimeError("server not ready in time")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)
