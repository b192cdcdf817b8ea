"""Hostile clients against `smoe serve` on loopback, each a bounded test that
stops by itself: slowloris (headers one byte at a time), a client that
never reads its stream, a burst of connections far beyond
--max-connections, a 1 GB body, and thousands of requests against a small
queue.  In each the server keeps answering /health and a well-behaved
client, rejects the rest with the right status (413, 503 with Retry-After,
or a refused connection beyond the limit), and recovers fully afterwards:
a normal request succeeds, no sequence is left running, its file
descriptors go back to their level before the attack, and it exits 0 on
SIGTERM without a sanitizer report.

Sizes are scaled down to fit about a minute in CI and under ASan; the
environment sets the full sizes of the issue (SMOE_HOSTILE_FULL=1 sets them
all at once):
    SMOE_HOSTILE_SLOWLORIS  slowloris connections (4; full 32)
    SMOE_HOSTILE_SLOW_BYTES header bytes each sends, one a second (3; full 20)
    SMOE_HOSTILE_CONNS      connections opened at once (300; full 1000)
    SMOE_HOSTILE_MAX_CONNECTIONS  the server's --max-connections then (32; full 128)
    SMOE_HOSTILE_BODY       body announced and sent, bytes (256 MiB; full 1 GiB)
    SMOE_HOSTILE_REQUESTS   requests sent against the queue (1000; full 10000)
Latencies are measured and printed, never asserted (shared CI machines);
time limits are safety bounds only.  Synchronisation is on the server's
answers and its /metrics, never on sleeps."""
import json
import os
import resource
import socket
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from server_lib import EOS, V3_VOCAB, Server, http_request_bytes, make_model, read_until
from smoe_testlib import Workdir

FULL = os.environ.get("SMOE_HOSTILE_FULL") == "1"


def param(name, small, full):
    return int(os.environ.get(name, full if FULL else small))


NO_EOS = {str(EOS): -100}


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def status_line(sock):
    """The status line of the reply on sock, or None when the server closed or reset it."""
    try:
        reply = read_until(sock, b"\r\n")
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        return None
    return reply.split(b"\r\n", 1)[0] if reply else None


class HostileBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = make_model(cls.dir.file("tiny.gguf"), V3_VOCAB)
        # a burst of connections needs descriptors on this side too
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = max(soft, min(hard, param("SMOE_HOSTILE_CONNS", 300, 1000) + 256))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def start(self, *args):
        srv = Server(self.model, "--quiet", *args)
        self.addCleanup(lambda: srv.proc.poll() is None and srv.stop())
        return srv

    def finish(self, srv, fd_before):
        """Recovery: no sequence left, a normal request works, the fds come
        back to their level before the attack, a clean exit."""
        srv.wait_metric("smoe_active_sequences", lambda v: v == 0, timeout=120)
        srv.wait_metric("smoe_queue_length", lambda v: v == 0, timeout=120)
        self.assertEqual(self.health(srv), 200)
        status, r = srv.post("/v1/completions", {"prompt": "after", "max_tokens": 4})
        self.assertEqual(status, 200, r)
        end = time.monotonic() + 60
        while fds(srv.proc.pid) > fd_before:  # the server closes its sides asynchronously
            self.assertLess(time.monotonic(), end, f"fds {fds(srv.proc.pid)} > {fd_before} before the attack")
            time.sleep(0.05)  # polling another process's state, not synchronisation
        srv.check_clean_exit(self, srv.stop())

    def health(self, srv, timeout=60):
        return srv.request("GET", "/health", timeout=timeout)[0]

    def timed_completion(self, srv):
        t0 = time.monotonic()
        status, r = srv.post("/v1/completions", {"prompt": "well behaved", "max_tokens": 8, "logit_bias": NO_EOS},
                             timeout=120)
        self.assertEqual(status, 200, r)
        self.assertEqual(r["usage"]["completion_tokens"], 8)
        return time.monotonic() - t0

    def idle_fds(self, srv):
        """The fd count once the readiness check's connection is gone."""
        self.assertEqual(self.health(srv), 200)
        n = fds(srv.proc.pid)
        for _ in range(20):  # its closing is asynchronous: the lowest of a few looks
            time.sleep(0.05)  # polling another process's state
            n = min(n, fds(srv.proc.pid))
        return n


class Slowloris(HostileBase):
    def test_slowloris(self):
        """Connections that send their headers one byte a second hold a slot
        each, but /health and a completion still answer; once they go quiet
        the idle timeout closes them."""
        n = param("SMOE_HOSTILE_SLOWLORIS", 4, 32)
        n_bytes = param("SMOE_HOSTILE_SLOW_BYTES", 3, 20)
        srv = self.start("--timeout", 3, "--max-connections", n + 16)
        fd0 = self.idle_fds(srv)
        base = self.timed_completion(srv)
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096
        socks = [srv.raw(None, timeout=60) for _ in range(n)]
        started = threading.Barrier(n + 1, timeout=60)
        stop = threading.Event()
        sent = [0] * n

        def drip(i):
            try:
                socks[i].sendall(head[:1])
                sent[i] = 1
                started.wait()
                # one byte a second: the attacker's own pace, not synchronisation
                while sent[i] < n_bytes and not stop.wait(1.0):
                    socks[i].sendall(head[sent[i]:sent[i] + 1])
                    sent[i] += 1
            except OSError:
                pass

        threads = [threading.Thread(target=drip, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        started.wait()
        # every slowloris connection is accepted (holding a thread and a slot)
        # while the server answers others
        t0 = time.monotonic()
        self.assertEqual(self.health(srv), 200)
        health_s = time.monotonic() - t0
        during = self.timed_completion(srv)
        print(f"\n  slowloris x{n}: completion {base * 1e3:.0f} ms alone, {during * 1e3:.0f} ms during; "
              f"/health {health_s * 1e3:.0f} ms", flush=True)
        for t in threads:
            t.join(n_bytes + 60)
        # silent now: every one of them is closed by the server (--timeout)
        for s in socks:
            s.settimeout(60)
            try:
                self.assertEqual(s.recv(100), b"", "a slowloris connection got an answer or stayed open")
            except ConnectionResetError:
                pass
            s.close()
        self.finish(srv, fd0)


    def test_slowloris_beyond_the_connection_limit(self):
        """As many dripping connections as --max-connections, dripping a
        header byte every half second for as long as they are let: MHD's
        idle timeout never fires (a byte keeps arriving), so only the
        receive deadline (--read-timeout) frees the slots.  A client locked
        out meanwhile gets in once they are shut down, every dripper is
        closed by the server without an answer, and the metric counts them."""
        m = 6
        srv = self.start("--max-connections", m, "--timeout", 120, "--read-timeout", 2)
        fd0 = self.idle_fds(srv)
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096
        socks = [srv.raw(head[:1], timeout=60) for _ in range(m)]
        closed_by_server = [False] * m
        stop = threading.Event()

        def drip(i):
            sent = 1
            # the attacker's own pace, not synchronisation; bounded at 90 s
            end = time.monotonic() + 90
            while not stop.wait(0.5) and time.monotonic() < end and sent < len(head):
                try:
                    socks[i].sendall(head[sent:sent + 1])
                    sent += 1
                except OSError:  # reset or broken pipe: the server closed it
                    closed_by_server[i] = True
                    return
            socks[i].settimeout(5)
            try:
                closed_by_server[i] = socks[i].recv(100) == b""
            except (ConnectionResetError, socket.timeout):
                closed_by_server[i] = True

        threads = [threading.Thread(target=drip, args=(i,)) for i in range(m)]
        for t in threads:
            t.start()
        # a well-behaved client: refused while the drippers hold every slot,
        # served once the deadline has shut them down (well before their
        # own 90 s bound)
        refused, status = 0, None
        end = time.monotonic() + 60
        while status != 200:
            self.assertLess(time.monotonic(), end, "locked out for 60 s by dripping connections")
            try:
                status = srv.request("GET", "/health", timeout=10)[0]
            except OSError:
                refused += 1
                time.sleep(0.1)  # retry pace; success is observed, not assumed
        print(f"\n  slowloris x{m} at the limit: a client was refused {refused} times, then served", flush=True)
        for t in threads:
            t.join(100)
        stop.set()
        self.assertEqual(closed_by_server, [True] * m, "a dripping connection was not closed by the server")
        self.assertGreaterEqual(srv.metric("smoe_http_read_timeouts_total"), m)
        for s in socks:
            s.close()
        self.finish(srv, fd0)


class NeverReads(HostileBase):
    def test_client_that_never_reads(self):
        """A streaming client with a tiny receive buffer that never reads:
        the server's send stalls, others are served meanwhile, and the
        stalled connection is dropped by the timeout, cancelling its
        sequence."""
        # The kernel buffers up to 4 MiB (tcp_wmem) of a stalled loopback
        # stream on the server's side: 8 choices with 20 logprobs a token
        # fill that within a few hundred steps.
        srv = self.start("--timeout", 2, "--parallel", 10, "--ctx-size", 8192, "--max-tokens", 8000)
        fd0 = self.idle_fds(srv)
        cancelled0 = srv.metric("smoe_sequences_cancelled_total")
        base = self.timed_completion(srv)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect(("127.0.0.1", srv.port))
        body = json.dumps({"messages": [{"role": "user", "content": "never read"}], "max_tokens": 8000, "n": 8,
                           "logprobs": True, "top_logprobs": 20, "logit_bias": NO_EOS, "stream": True}).encode()
        s.sendall(http_request_bytes("POST", "/v1/chat/completions", body, port=srv.port))
        srv.wait_metric("smoe_active_sequences", lambda v: v >= 1)
        # served meanwhile (in free slots, batched with the stalled choices),
        # while they are still running
        self.assertEqual(self.health(srv), 200)
        during = self.timed_completion(srv)
        self.assertEqual(srv.metric("smoe_sequences_cancelled_total"), cancelled0, "served only after the cancel")
        # the stalled stream is dropped and its sequences cancelled long
        # before their 8000 tokens
        srv.wait_metric("smoe_sequences_cancelled_total", lambda v: v >= cancelled0 + 8, timeout=300)
        generated = srv.metric("smoe_generated_tokens_total")
        print(f"\n  never-reading client: completion {base * 1e3:.0f} ms alone, {during * 1e3:.0f} ms "
              f"meanwhile (batched with its 8 choices); "
              f"{generated:.0f} tokens generated in all before the cancel", flush=True)
        s.close()
        self.finish(srv, fd0)


class ConnectionFlood(HostileBase):
    def test_many_connections_at_once(self):
        """Far more connections than --max-connections at once: at most the
        limit is served (kept alive), the rest refused; afterwards /health
        answers again and the fds come back."""
        n = param("SMOE_HOSTILE_CONNS", 300, 1000)
        limit = param("SMOE_HOSTILE_MAX_CONNECTIONS", 32, 128)
        srv = self.start("--max-connections", limit, "--timeout", 30)
        fd0 = self.idle_fds(srv)
        socks = []
        for _ in range(n):
            try:
                socks.append(srv.raw(None, timeout=30))
            except OSError:  # refused at connect: also a rejection
                socks.append(None)
        served = refused = 0
        for s in socks:
            if s is None:
                refused += 1
                continue
            try:
                s.sendall(http_request_bytes("GET", "/health", b"", {}, srv.port))
            except OSError:
                refused += 1
                continue
            line = status_line(s)
            if line == b"HTTP/1.1 200 OK":
                served += 1
            else:
                self.assertIsNone(line, "an answer other than 200 or a refusal")
                refused += 1
        print(f"\n  {n} connections at once: {served} served, {refused} refused (--max-connections {limit}); "
              f"server fds {fds(srv.proc.pid)} (idle {fd0})", flush=True)
        self.assertEqual(served + refused, n)
        self.assertGreaterEqual(served, 1)
        self.assertLessEqual(served, limit)
        self.assertGreater(refused, 0)
        for s in socks:
            if s is not None:
                s.close()
        # connections are accepted again once they are closed (freed asynchronously: retried)
        end = time.monotonic() + 60
        while True:
            s = srv.raw(None)
            try:
                s.sendall(http_request_bytes("GET", "/health", b"", {}, srv.port))
                ok = status_line(s) == b"HTTP/1.1 200 OK"
            except OSError:
                ok = False
            s.close()
            if ok:
                break
            self.assertLess(time.monotonic(), end, "connections are not accepted again")
            time.sleep(0.05)  # polling the server's recovery
        self.finish(srv, fd0)


class HugeBody(HostileBase):
    def send_until_answered(self, srv, head, total, chunked=False):
        """Send head then up to total bytes of body from a thread while this
        thread waits for the reply; stop sending once it has come (or the
        server closed).  Returns (reply bytes, bytes of body sent)."""
        sock = srv.raw(None, timeout=120)
        done = threading.Event()
        sent = [0]
        block = b" " * (1 << 20)

        def sender():
            try:
                sock.sendall(head)
                while sent[0] < total and not done.is_set():
                    n = min(len(block), total - sent[0])
                    if chunked:
                        sock.sendall(b"%x\r\n" % n + block[:n] + b"\r\n")
                    else:
                        sock.sendall(block[:n])
                    sent[0] += n
                if chunked and not done.is_set():
                    sock.sendall(b"0\r\n\r\n")  # the last chunk: the body ends
            except OSError:
                pass  # the server closed or reset: what it does after answering

        t = threading.Thread(target=sender)
        t.start()
        try:
            reply = read_until(sock, b"}")
        except (ConnectionResetError, BrokenPipeError):
            reply = b""
        done.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender
        except OSError:
            pass  # already reset by the server
        t.join(120)
        sock.close()
        return reply, sent[0]

    def test_huge_body(self):
        """A body of a gigabyte announced by Content-Length: 413 at once,
        the body not read; chunked (no length): refused once it passes
        --max-body, read to its end and thrown away (never kept), then
        answered 413.  Memory stays flat; others are served."""
        total = param("SMOE_HOSTILE_BODY", 256 << 20, 1 << 30)
        srv = self.start("--max-body", 1 << 20, "--read-timeout", 60)
        fd0 = self.idle_fds(srv)
        rss0 = rss_kib(srv.proc.pid)
        head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {total}\r\n\r\n").encode()
        reply, sent = self.send_until_answered(srv, head, total)
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        self.assertIn(b"request_too_large", reply)
        rss1 = rss_kib(srv.proc.pid)
        # chunked: no length to refuse up front
        head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        reply2, sent2 = self.send_until_answered(srv, head, total, chunked=True)
        self.assertTrue(reply2.startswith(b"HTTP/1.1 413"), reply2[:200])
        self.assertIn(b"request_too_large", reply2)
        rss2 = rss_kib(srv.proc.pid)
        print(f"\n  {total >> 20} MiB body: Content-Length -> {reply[:12].decode()} after {sent >> 20} MiB sent; "
              f"chunked -> {(reply2[:12] or b'closed').decode()} after {sent2 >> 20} MiB sent; "
              f"server RSS {rss0} -> {rss1} -> {rss2} KiB", flush=True)
        # never buffered: the server's memory did not take the body in
        self.assertLess(rss1 - rss0, 64 << 10, "RSS grew by 64 MiB or more")
        self.assertLess(rss2 - rss0, 64 << 10, "RSS grew by 64 MiB or more")
        self.timed_completion(srv)
        self.finish(srv, fd0)


class QueueFlood(HostileBase):
    def test_thousands_of_requests_queued(self):
        """One slot held by a long stream, a queue of 8, and many requests
        from 48 concurrent clients: the queue fills, the rest get 503 with
        Retry-After, nothing else; the long stream keeps going; once it is
        cancelled the queued requests all complete and the server works."""
        n = param("SMOE_HOSTILE_REQUESTS", 1000, 10000)
        queue, workers = 8, 48
        srv = self.start("--parallel", 1, "--queue", queue, "--max-connections", workers + 16, "--ctx-size", 8192,
                         "--max-tokens", 8000)
        fd0 = self.idle_fds(srv)
        body = json.dumps({"prompt": "hold the slot", "max_tokens": 8000, "logit_bias": NO_EOS,
                           "stream": True}).encode()
        holder = srv.raw(http_request_bytes("POST", "/v1/completions", body, port=srv.port), timeout=120)
        read_until(holder, b"data: ")
        req = json.dumps({"prompt": "queued", "max_tokens": 2}).encode()
        counts = {}
        bad = []
        lock = threading.Lock()
        left = [n]

        def worker():
            conn = None
            while True:
                with lock:
                    if left[0] == 0:
                        break
                    left[0] -= 1
                try:
                    if conn is None:
                        conn = srv.conn(timeout=300)
                    conn.request("POST", "/v1/completions", body=req, headers={"Content-Type": "application/json"})
                    r = conn.getresponse()
                    data = r.read()
                    key = r.status
                    if r.status == 503:
                        if r.getheader("Retry-After") != "1" or json.loads(data)["error"]["code"] != "queue_full":
                            bad.append((r.status, r.getheaders(), data[:200]))
                    elif r.status != 200:
                        bad.append((r.status, data[:200]))
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except OSError as e:
                    key = type(e).__name__
                    bad.append(repr(e))
                    if conn:
                        conn.close()
                    conn = None
                with lock:
                    counts[key] = counts.get(key, 0) + 1
            if conn:
                conn.close()

        pool = [threading.Thread(target=worker) for _ in range(workers)]
        for t in pool:
            t.start()
        # the queue fills (the slot is held), and most requests are turned away
        srv.wait_metric("smoe_queue_length", lambda v: v == queue, timeout=120)
        end = time.monotonic() + 600
        while True:  # every request sent but the queued ones answered
            with lock:
                answered = sum(counts.values())
            if answered >= n - queue or all(not t.is_alive() for t in pool):
                break
            self.assertLess(time.monotonic(), end, "the flood did not get through")
            time.sleep(0.05)  # polling this test's own workers
        # meanwhile /health answers and the holder's stream goes on
        self.assertEqual(self.health(srv), 200)
        self.assertIn(b"data: ", read_until(holder, b"\n\n"))
        holder.close()  # frees the slot: the queued requests run
        for t in pool:
            t.join(300)
            self.assertFalse(t.is_alive())
        print(f"\n  {n} requests, queue {queue}, {workers} clients: {counts}", flush=True)
        self.assertEqual(bad, [], bad[:5])
        self.assertEqual(sum(counts.values()), n)
        self.assertEqual(set(counts), {200, 503}, counts)
        self.assertGreaterEqual(counts[200], queue)
        self.finish(srv, fd0)


if __name__ == "__main__":
    unittest.main()
