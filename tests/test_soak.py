"""The soak (bench/soak.mjs) in short: `smoe serve` on a tiny synthetic
model under 8 concurrent clients for SMOE_SOAK_SECONDS (default 120; 60 on
the sanitizer build) of
mixed traffic: OpenAI chat and completions streamed and not, Ollama chat and
generate streamed, structured output, tool calls (when the server makes
them), streams aborted midway and malformed requests.  Passes when the soak
reports zero unexpected errors, every stream ended properly, resident
memory at the end within 5% of its level after the first half (the first
minute of a longer run), the server's file descriptors back at their idle
level and no sequence left running; then the server exits 0 on SIGTERM
without a sanitizer report (the sanitizer build also checks leaks at exit).

Skips when node is not installed.  The full 30-minute run is by hand:
    node bench/soak.mjs --url http://127.0.0.1:PORT --pid PID
(bench/README.md)."""
import json
import os
import shutil
import subprocess
import unittest

from server_lib import V3_VOCAB, Server, make_model
from smoe_testlib import ROOT, SMOE, Workdir

SOAK = os.path.join(ROOT, "bench", "soak.mjs")


def sanitizer_build():
    with open(SMOE, "rb") as f:
        return b"__asan_init" in f.read()


@unittest.skipUnless(shutil.which("node"), "node is not installed")
class SoakTest(unittest.TestCase):
    def test_soak(self):
        # 120 s; 60 s on the sanitizer build, which the suite also runs (CI's
        # budget), unless SMOE_SOAK_SECONDS says otherwise
        seconds = os.environ.get("SMOE_SOAK_SECONDS", "60" if sanitizer_build() else "120")
        d = Workdir()
        env = dict(os.environ, SMOE_SOAK_SECONDS=seconds)
        saved = os.environ.get("ASAN_OPTIONS")
        try:
            model = make_model(d.file("tiny.gguf"), V3_VOCAB)
            if sanitizer_build():
                # ASan keeps freed memory in a quarantine (256 MiB by default)
                # that fills over minutes: RSS would grow by design.  A small
                # one fills within the first half, so growth after it is ours.
                os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [saved, "quarantine_size_mb=4",
                                                                    "thread_local_quarantine_size_kb=64"]))
            srv = Server(model, "--parallel", 4, "--ctx-size", 1024, "--quiet", threads=1)
            if saved is None:
                os.environ.pop("ASAN_OPTIONS", None)
            else:
                os.environ["ASAN_OPTIONS"] = saved
            try:
                p = subprocess.run(["node", SOAK, "--url", f"http://127.0.0.1:{srv.port}", "--pid", str(srv.proc.pid),
                                    "--clients", "8", "--json"], env=env, capture_output=True, text=True,
                                   timeout=float(seconds) + 300)
            finally:
                rc = srv.stop()
            out = p.stdout.strip().splitlines()
            self.assertTrue(out, f"no summary from the soak (exit {p.returncode}):\n{p.stderr[-3000:]}")
            summary = json.loads(out[-1])
            summary.pop("samples", None)
            report = json.dumps(summary, indent=1)
            print(f"\nsoak summary: {report}", flush=True)
            self.assertEqual(summary["failures"], [], report)
            self.assertEqual(summary["errors"], {}, report)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            # the mix really ran: every kind, and tokens came out
            for kind in ["chat", "completions", "chat_whole", "ollama_chat", "ollama_generate", "structured",
                         "ollama_format", "cancel", "malformed"]:
                self.assertGreater(summary["by_kind"].get(kind, 0), 0, f"no {kind} request completed: {report}")
            if summary["tools"] == "on":
                self.assertGreater(summary["by_kind"].get("tools", 0), 0, report)
            self.assertGreater(summary["generated_tokens"], 0, report)
            srv.check_clean_exit(self, rc)
        finally:
            if saved is None:
                os.environ.pop("ASAN_OPTIONS", None)
            else:
                os.environ["ASAN_OPTIONS"] = saved
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
