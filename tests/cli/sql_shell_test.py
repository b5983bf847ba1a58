#!/usr/bin/python3
"""The interactive `runnel sql` shell under a pseudo-terminal, against a real `runnel serve`.

Drives the shell the way a person does, key by key, and checks what the terminal shows: HELP
lists the statements; `SELECT 1;` prints 1 and Ctrl-C stops that push query; Ctrl-C in the
middle of a statement spanning lines drops it and the next statement still runs; an error
points at the line of the statement itself (not of the session); Up recalls the last
statement as one entry; Tab completes a keyword and a declared column; Ctrl-D on an empty line
leaves with status 0; the history file then holds the statements. Every wait is for output,
with a deadline.

Run: /usr/bin/python3 sql_shell_test.py --runnel PATH
"""
import fcntl
import os
import pty
import re
import select
import struct
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kafka"))
import harness  # noqa: E402

DEADLINE_S = 30
PROMPT = "runnel> "
MORE = "     -> "


class shell:
    """`runnel sql` on the child side of a pty; `expect` reads what it shows."""

    def __init__(self, binary, http, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
            os.execve(binary, [binary, "sql", "--http", http], env)
        self.out = ""
        self.seen = 0  # what `expect` has consumed of `out`

    def send(self, keys):
        os.write(self.fd, keys.encode())

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self.out += data.decode("utf-8", "replace")
        return True

    def expect(self, pattern, what):
        """Waits for `pattern` (a regex) in the output after what was already matched."""
        deadline = time.monotonic() + DEADLINE_S
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.out, self.seen)
            if m:
                self.seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)) and not rx.search(self.out, self.seen):
                raise AssertionError(f"{what}: no {pattern!r} before the deadline; the shell showed:\n"
                                     + self.out[self.seen:][-3000:])

    def prompt(self, what):
        self.expect(re.escape(PROMPT) + "$", what)

    def wait_exit(self):
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            self._read(0.2)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("the shell did not exit; it showed:\n" + self.out[-3000:])


def history_entries(path):
    """The entries of libedit's history file (strvis-encoded lines after a header)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines and lines[0] == "_HiStOrY_V2_", lines[:2]
    return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), l) for l in lines[1:]]


def main():
    binary = harness.runnel_binary()
    home = tempfile.mkdtemp(prefix="sql-shell-home-")
    history = os.path.join(home, "history")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TERM": "xterm",
           "RUNNEL_SQL_HISTORY": history}
    with harness.RunnelServer(binary, name="sqlshell") as srv:
        sh = shell(binary, f"127.0.0.1:{srv.http_port}", env)
        try:
            sh.prompt("the first prompt")

            sh.send("HELP;\r")
            sh.expect(r"INSERT INTO", "HELP lists INSERT INTO")
            sh.expect(r"SHOW TABLES", "HELP lists SHOW TABLES")
            sh.prompt("the prompt after HELP")

            sh.send("SELECT 1;\r")
            sh.expect(r"EXPR\$0 *\r?\n1 *\r?\n-- 1 row,", "SELECT 1 prints 1")
            sh.send("\x03")
            sh.expect(r"query stopped", "Ctrl-C stops the push query")
            sh.prompt("the prompt after the push query")

            # Ctrl-C in the middle of a statement on two lines: dropped, the session goes on.
            sh.send("SELECT\r")
            sh.expect(re.escape(MORE), "the continuation prompt")
            sh.send("1 +")
            sh.expect(r"1 \+", "the echo of a half-typed line")
            sh.send("\x03")
            sh.prompt("a fresh prompt after Ctrl-C")
            sh.send("SELECT 40 + 2 AS answer;\r")
            sh.expect(r"answer *\r?\n42 *\r?\n-- 1 row,", "the statement after Ctrl-C runs alone")
            sh.send("\x03")
            sh.expect(r"query stopped", "Ctrl-C stops the second push query")
            sh.prompt("the prompt after the second push query")

            # A declaration, then an error on the second line of a statement: line 2, not the
            # session's line.
            sh.send("CREATE TABLE ticks (price_usd BIGINT, ts TIMESTAMP(3))\r")
            sh.expect(re.escape(MORE), "the continuation prompt of CREATE TABLE")
            sh.send("WITH ('connector' = 'datagen');\r")
            sh.expect(r"table ticks declared", "CREATE TABLE is declared")
            sh.prompt("the prompt after CREATE TABLE")
            sh.send("SELECT price_usd\r")
            sh.expect(re.escape(MORE), "the continuation prompt of a SELECT")
            sh.send("FROM no_such_table;\r")
            sh.expect(r"line 2:6: [^\r\n]*no_such_table", "the error points into the statement's line 2")
            sh.prompt("the prompt after the error")

            # Up brings the statement back as one entry; run again it fails on its line 1.
            sh.send("\x1b[A")
            sh.expect(r"SELECT price_usd FROM no_such_table;", "Up recalls the statement")
            sh.send("\r")
            sh.expect(r"line 1:23: [^\r\n]*no_such_table", "the recalled statement runs")
            sh.prompt("the prompt after the recalled statement")

            # Tab completes a keyword, then a column of the declared table.
            sh.send("hel\t;\r")
            sh.expect(r"this list", "Tab completes hel to help")
            sh.prompt("the prompt after the completed HELP")
            sh.send("SELECT price\t")
            sh.expect(r"_usd", "Tab completes a column")
            sh.send("\x03")
            sh.prompt("a fresh prompt after the completed column")

            sh.send("\x04")
            code = sh.wait_exit()
            assert code == 0, f"Ctrl-D: the shell exited with {code}:\n" + sh.out[-2000:]
        except BaseException:
            try:
                os.kill(sh.pid, 9)
                os.waitpid(sh.pid, 0)
            except OSError:
                pass
            raise
    entries = history_entries(history)
    for want in ("HELP;", "SELECT 1;", "SELECT 40 + 2 AS answer;",
                 "CREATE TABLE ticks (price_usd BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen');",
                 "SELECT price_usd FROM no_such_table;", "help ;"):
        assert want in entries, f"{want!r} not in the history file: {entries}"
    assert not any("1 +" in e for e in entries), f"the dropped statement is in the history: {entries}"
    assert entries.count("SELECT price_usd FROM no_such_table;") == 1, entries
    mode = os.stat(history).st_mode & 0o777
    assert mode == 0o600, f"history file mode {oct(mode)}"
    print("sql shell test passed")


if __name__ == "__main__":
    main()
