"""Helpers for the `smoe serve` tests: start a server on a free loopback
port (the port comes from its own "listening on" line, readiness from its
"ready" line: no sleeps), talk raw HTTP to it, stop it with SIGTERM and check
that it exited 0 without sanitizer reports."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from smoe_testlib import SHARED, SMOE, smoe

V1_VOCAB = os.path.join(SHARED, "tokenizers", "mistral-v1.model")
V3_VOCAB = os.path.join(SHARED, "tokenizers", "mistral-v3.model")
GOLDEN = os.path.join(SHARED, "golden", "mistral-chat")
EOS = 2  # </s> in every vocabulary the tests use


def make_model(path, vocab=None, preset="tiny"):
    """A synthetic model; with the real Mistral vocabulary when given and present."""
    args = ["synth", "--preset", preset, "-o", path]
    if vocab and os.path.exists(vocab):
        args += ["--vocab", vocab]
    smoe(*args)
    return path


class Server:
    def __init__(self, model, *args, threads=1, timeout=120, wait_ready=True):
        cmd = [SMOE, "serve", "-m", model, "--port", "0", "-t", str(threads), *map(str, args)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.lines = []
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        m = self.wait_for(r"listening on http://\S+:(\d+)$", timeout)
        self.port = int(m.group(1))
        if wait_ready:
            self.wait_for(r"smoe serve: ready", timeout)

    def _read(self):
        for line in self.proc.stderr:
            with self.cv:
                self.lines.append(line.rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.lines.append(None)  # end of output
            self.cv.notify_all()

    def wait_for(self, pattern, timeout=60):
        """The first stderr line matching pattern (waits for it)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cv:
            i = 0
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    i += 1
                    if line is None:
                        raise AssertionError(f"server exited before printing {pattern!r}:\n" + self.log())
                    m = rx.search(line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n" + self.log())
                self.cv.wait(left)

    def log(self):
        with self.cv:
            return "\n".join(line for line in self.lines if line is not None)

    # HTTP ------------------------------------------------------------------

    def conn(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, headers, raw body bytes)."""
        c = self.conn(timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, hdrs, data

    def json(self, method, path, body=None, headers=None, timeout=120):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        try:
            return status, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: status {status}, body is not JSON: {data[:300]!r}")

    def post(self, path, body, **kw):
        return self.json("POST", path, body, **kw)

    def sse(self, path, body, headers=None):
        """A streamed OpenAI request: (status, content type, [parsed events], saw [DONE])."""
        status, hdrs, data = self.request("POST", path, body, headers)
        events, done = [], False
        text = data.decode()
        if status == 200:
            assert text.endswith("\n\n"), text[-200:]
        for block in text.split("\n\n"):
            if not block:
                continue
            assert block.startswith("data: "), block
            payload = block[6:]
            if payload == "[DONE]":
                done = True
                continue
            assert not done, "an event after [DONE]"
            events.append(json.loads(payload))
        return status, hdrs.get("content-type"), events, done

    def ndjson(self, path, body):
        status, hdrs, data = self.request("POST", path, body)
        lines = data.decode().split("\n")
        assert lines[-1] == "", "NDJSON must end with a newline"
        return status, hdrs.get("content-type"), [json.loads(line) for line in lines[:-1]]

    def metrics(self):
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        out = {}
        for line in data.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def metric(self, name):
        return self.metrics().get(name, 0.0)

    def wait_metric(self, name, pred, timeout=30):
        end = time.monotonic() + timeout
        while True:
            v = self.metric(name)
            if pred(v):
                return v
            if time.monotonic() > end:
                raise AssertionError(f"{name} = {v} did not reach the expected value within {timeout} s")
            time.sleep(0.02)  # polling an external process's state; not synchronisation on output

    def raw(self, data, timeout=30):
        """A raw socket with data sent."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if data:
            s.sendall(data)
        return s

    # lifetime --------------------------------------------------------------

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Signal the server, wait for its exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not exit after SIGTERM:\n" + self.log()[-3000:])
        self.reader.join(10)
        return rc

    def check_clean_exit(self, test, rc):
        log = self.log()
        test.assertNotIn("Sanitizer", log, log[-4000:])
        test.assertNotIn("runtime error", log, log[-4000:])
        test.assertEqual(rc, 0, log[-4000:])


def http_request_bytes(method, path, body=b"", headers=None, port=0):
    h = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "Content-Length": str(len(body))}
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return head.encode() + body


def read_until(sock, marker, limit=1 << 20):
    """Read from sock until marker has been seen; returns what was read."""
    buf = b""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            break
    return buf


def sse_text(events):
    """Concatenated content of chat chunks, per choice index."""
    out = {}
    for e in events:
        for ch in e.get("choices", []):
            d = ch.get("delta", {})
            if "content" in d and d["content"] is not None:
                out[ch["index"]] = out.get(ch["index"], "") + d["content"]
            if "text" in ch:
                out[ch["index"]] = out.get(ch["index"], "") + ch["text"]
    return out
