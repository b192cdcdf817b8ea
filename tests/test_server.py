"""`smoe serve`: the OpenAI and Ollama APIs over raw HTTP.

Each class starts its own server(s) on a free loopback port with a tiny
synthetic model (the real Mistral v3 vocabulary when ../shared is there, so
that the chat format and the golden prompts are the real ones; otherwise a
byte vocabulary, and the golden cases skip).  Covered: response shapes
(streaming and not), every error path with its status and error shape,
limits (body size, JSON depth, messages, timeouts), API key and CORS, the
same seed alone or batched, n > 1, stop strings, logprobs, prefix reuse,
client disconnects cancelling their sequence, the bounded queue (503),
/tokenize and /detokenize against the golden prompts, /metrics, and SIGTERM
(exit 0, in-flight requests finished) with no sanitizer report and no leak
(the sanitizer build checks leaks at exit)."""
import json
import os
import signal
import socket
import threading
import time
import unittest

from server_lib import (EOS, GOLDEN, V1_VOCAB, V3_VOCAB, Server, http_request_bytes, make_model, read_until,
                        sse_text)
from smoe_testlib import Workdir

HAVE_SHARED = os.path.exists(V3_VOCAB) and os.path.isdir(GOLDEN)
NO_EOS = {str(EOS): -100}  # the random model must not stop early


def chat(content, **kw):
    body = {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 8, "seed": 1}
    body.update(kw)
    return body


class ServerTest(unittest.TestCase):
    """One server (4 slots) shared by the tests that do not need special flags."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = make_model(cls.dir.file("tiny.gguf"), V3_VOCAB)
        cls.srv = Server(cls.model, "--parallel", 4, "--ctx-size", 4096, "--max-body", 100000, "--max-depth", 32,
                         "--max-messages", 50, "--max-tokens", 4000)

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        cls.srv_rc = rc
        try:
            log = cls.srv.log()
            assert "Sanitizer" not in log and "runtime error" not in log, log[-4000:]
            assert rc == 0, f"exit code {rc}: {log[-3000:]}"
        finally:
            cls.dir.cleanup()

    # helpers -------------------------------------------------------------

    def error(self, status, body, want_status, param=None, path="/v1/chat/completions", raw=None):
        self.assertEqual(status, want_status, body)
        self.assertIn("error", body)
        e = body["error"]
        self.assertEqual(set(e), {"message", "type", "param", "code"}, e)
        self.assertIsInstance(e["message"], str)
        self.assertTrue(e["message"])
        if param is not None:
            self.assertEqual(e["param"], param, e)
        return e

    def completion(self, prompt, **kw):
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 12, "seed": 1}
        body.update(kw)
        status, r = self.srv.post("/v1/completions", body)
        self.assertEqual(status, 200, r)
        return r

    # basic routes --------------------------------------------------------

    def test_health_and_models(self):
        s = self.srv
        self.assertEqual(s.json("GET", "/health"), (200, {"status": "ok"}))
        status, r = s.json("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(r["object"], "list")
        self.assertEqual([m["id"] for m in r["data"]], ["tiny"])
        self.assertEqual(set(r["data"][0]), {"id", "object", "created", "owned_by"})
        self.assertEqual(s.json("GET", "/v1/models/tiny")[1]["id"], "tiny")
        status, r = s.json("GET", "/v1/models/nope")
        self.assertEqual(self.error(status, r, 404)["code"], "model_not_found")
        status, _, body = s.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertIn(b"running", body)
        self.assertEqual(s.json("GET", "/api/version")[0], 200)
        status, r = s.json("GET", "/api/tags")
        self.assertEqual(r["models"][0]["name"], "tiny:latest")
        status, r = s.json("GET", "/api/ps")
        self.assertEqual(r["models"][0]["model"], "tiny:latest")
        status, r = s.post("/api/show", {"model": "tiny"})
        self.assertEqual(status, 200)
        self.assertIn("model_info", r)
        self.assertEqual(s.post("/api/show", {"model": "other"})[0], 404)

    # errors ----------------------------------------------------------------

    def test_unknown_routes_and_methods(self):
        s = self.srv
        status, r = s.json("GET", "/v1/nothing")
        self.error(status, r, 404)
        status, r = s.json("POST", "/api/nothing", {})
        self.assertEqual(status, 404)
        self.assertEqual(set(r), {"error"})  # Ollama's shape
        self.assertIsInstance(r["error"], str)
        status, r = s.json("GET", "/v1/chat/completions")
        self.error(status, r, 405)
        status, r = s.json("DELETE", "/v1/models")
        self.error(status, r, 405)

    def test_malformed_json(self):
        s = self.srv
        for body in [b"", b"{", b"{\"messages\": [}", b"nul", b"[1,2]", b"\"text\"", b"{\"a\":1}{", b"\x00\x01"]:
            with self.subTest(body=body):
                status, r = s.json("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
                e = self.error(status, r, 400)
                self.assertIn("JSON", e["message"])
        status, r = s.json("POST", "/api/chat", b"{oops", {"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertIn("JSON", r["error"])

    def test_invalid_utf8_and_nul(self):
        s = self.srv
        bad = [b'{"model":"tiny","messages":[{"role":"user","content":"caf\xe9"}]}',
               b'{"model":"tiny","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
               b'{"model":"tiny","messages":[{"role":"user","content":"a\\u0000b"}]}',
               b'{"model":"tiny","messages":[{"role":"user","content":"\\ud800"}]}']
        for body in bad:
            with self.subTest(body=body):
                status, r = s.json("POST", "/v1/chat/completions", body)
                self.error(status, r, 400)
        status, r = s.json("POST", "/api/generate", b'{"model":"tiny","prompt":"\xff"}')
        self.assertEqual(status, 400)
        self.assertIn("error", r)

    def test_deep_nesting(self):
        s = self.srv
        deep = b'{"model":"tiny","messages":' + b"[" * 40 + b"]" * 40 + b"}"
        status, r = s.json("POST", "/v1/chat/completions", deep)
        self.assertIn("nested", self.error(status, r, 400)["message"])
        deeper = b"[" * 200000 + b"]" * 200000  # larger than --max-body: 413 first
        self.assertEqual(s.json("POST", "/v1/chat/completions", deeper)[0], 413)
        # brackets inside strings do not count
        status, r = s.post("/v1/chat/completions", chat("[" * 100, max_tokens=1))
        self.assertEqual(status, 200, r)

    def test_body_too_large(self):
        s = self.srv
        # announced, the client waiting for "100 Continue": answered before the body is sent
        sock = s.raw(http_request_bytes("POST", "/v1/chat/completions", b"",
                                        {"Content-Length": "5000000", "Expect": "100-continue"}, s.port))
        reply = read_until(sock, b"}}")
        sock.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(body["error"]["code"], "request_too_large")
        # announced and sent at once: read and discarded, then answered, so
        # the client (still sending) gets the answer rather than a reset
        sock = s.raw(None)
        sender = threading.Thread(target=lambda: sock.sendall(http_request_bytes(
            "POST", "/v1/chat/completions", b"x" * 3000000, {}, s.port)))
        sender.start()
        reply = read_until(sock, b"}}")
        sender.join()
        sock.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        # chunked: discarded as it comes, answered at its end
        sock = s.raw(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     f"Content-Type: application/json\r\n\r\n".encode())
        for _ in range(30):
            sock.sendall(b"1000\r\n" + b" " * 4096 + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        reply = read_until(sock, b"}}")
        sock.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply[:200])
        # Ollama's shape
        status, r = s.json("POST", "/api/chat", b"x" * 200000)
        self.assertEqual(status, 413)
        self.assertIsInstance(r["error"], str)

    def test_bad_fields_name_their_param(self):
        s = self.srv
        cases = [
            ({"temperature": "hot"}, "temperature"), ({"temperature": 3}, "temperature"),
            ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"max_tokens": -1}, "max_tokens"),
            ({"max_tokens": 5000}, "max_tokens"), ({"max_tokens": 1.5}, "max_tokens"),
            ({"max_completion_tokens": "x"}, "max_completion_tokens"), ({"n": 0}, "n"), ({"n": 99}, "n"),
            ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": 7}, "stop"), ({"stop": [""]}, "stop"),
            ({"seed": "x"}, "seed"), ({"presence_penalty": 5}, "presence_penalty"),
            ({"frequency_penalty": -3}, "frequency_penalty"), ({"logit_bias": {"abc": 1}}, "logit_bias"),
            ({"logit_bias": {"1": 500}}, "logit_bias"), ({"logit_bias": {"99999999": 1}}, "logit_bias"),
            ({"logit_bias": [1]}, "logit_bias"), ({"top_logprobs": 3}, "top_logprobs"),
            ({"logprobs": True, "top_logprobs": 50}, "top_logprobs"), ({"logprobs": "yes"}, "logprobs"),
            ({"stream": "yes"}, "stream"), ({"stream_options": 1}, "stream_options"),
            ({"top_k": -1}, "top_k"), ({"min_p": 2}, "min_p"), ({"repetition_penalty": 0}, "repetition_penalty"),
            ({"messages": "hi"}, "messages"), ({"messages": []}, "messages"),
            ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
            ({"messages": [{"role": "user"}]}, "messages"), ({"messages": [{"role": "user", "content": 5}]}, "messages"),
            ({"messages": [{"role": "user", "content": "x"}] * 51}, "messages"), ({"model": 5}, "model"),
        ]
        for patch, param in cases:
            with self.subTest(patch=patch):
                status, r = s.post("/v1/chat/completions", chat("hi", **patch))
                self.error(status, r, 400, param)
        status, r = s.post("/v1/chat/completions", chat("hi", model="gpt-4"))
        self.assertEqual(self.error(status, r, 404, "model")["code"], "model_not_found")
        for patch, param in [({"prompt": None}, "prompt"), ({"prompt": 5}, "prompt"), ({"prompt": [1, "a"]}, "prompt"),
                             ({"prompt": [10 ** 9]}, "prompt"), ({"logprobs": True}, "logprobs"),
                             ({"logprobs": 21}, "logprobs")]:
            with self.subTest(patch=patch):
                body = {"model": "tiny", "prompt": "x", "max_tokens": 2}
                body.update(patch)
                status, r = s.post("/v1/completions", body)
                self.error(status, r, 400, param)
        # a prompt that does not fit the context
        status, r = s.post("/v1/completions", {"prompt": list(range(3, 4200)), "max_tokens": 2})
        self.assertEqual(self.error(status, r, 400, "prompt")["code"], "context_length_exceeded")

    def test_unknown_fields_ignored(self):
        status, r = self.srv.post("/v1/chat/completions", chat("hi", user="u1", foo={"bar": [1]}, max_tokens=2,
                                                                service_tier="auto", parallel_tool_calls=True))
        self.assertEqual(status, 200, r)

    def test_ollama_errors(self):
        s = self.srv
        for path, body, want in [
            ("/api/generate", {"prompt": "x"}, 400), ("/api/generate", {"model": "nope", "prompt": "x"}, 404),
            ("/api/generate", {"model": "tiny", "prompt": 5}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "options": {"temperature": "hot"}}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "options": {"num_predict": 10 ** 7}}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "options": []}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "format": "yaml"}, 400),  # "json" and schemas: test_grammar
            ("/api/generate", {"model": "tiny", "prompt": "x", "images": ["aGk="]}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "context": [-1]}, 400),
            ("/api/generate", {"model": "tiny", "prompt": "x", "stream": 1}, 400),
            ("/api/chat", {"model": "tiny", "messages": "x"}, 400),
            ("/api/chat", {"model": "tiny", "messages": [{"role": "nobody", "content": "x"}]}, 400),
            ("/api/chat", {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "options": {"top_k": -2}},
             400),
        ]:
            with self.subTest(path=path, body=body):
                status, r = s.post(path, body)
                self.assertEqual(status, want, r)
                self.assertEqual(set(r), {"error"})
                self.assertIsInstance(r["error"], str)

    # responses -------------------------------------------------------------

    def test_chat_non_streaming_shape(self):
        status, r = self.srv.post("/v1/chat/completions", chat("Hello there", max_tokens=6, logit_bias=NO_EOS))
        self.assertEqual(status, 200, r)
        self.assertEqual(list(r), ["id", "object", "created", "model", "system_fingerprint", "choices", "usage"])
        self.assertEqual(r["object"], "chat.completion")
        self.assertTrue(r["id"].startswith("chatcmpl-"))
        self.assertEqual(r["model"], "tiny")
        ch = r["choices"][0]
        self.assertEqual(ch["index"], 0)
        self.assertEqual(ch["message"]["role"], "assistant")
        self.assertIsInstance(ch["message"]["content"], str)
        self.assertIsNone(ch["logprobs"])
        self.assertEqual(ch["finish_reason"], "length")
        u = r["usage"]
        status, t = self.srv.post("/tokenize", {"messages": [{"role": "user", "content": "Hello there"}]})
        self.assertEqual(u["prompt_tokens"], len(t["tokens"]))
        self.assertEqual(u["completion_tokens"], 6)
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + 6)
        self.assertIn("cached_tokens", u["prompt_tokens_details"])

    def test_roles_content_parts_and_max_completion_tokens(self):
        s = self.srv
        plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"},
                 {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Again"}]
        # parts: the non-empty ones joined with a blank line (as mistral-common does)
        parts = [dict(m, content=[{"type": "text", "text": m["content"]}, {"type": "text", "text": ""}])
                 for m in plain]
        want = s.post("/tokenize", {"messages": plain})[1]["tokens"]
        self.assertEqual(s.post("/tokenize", {"messages": parts})[1]["tokens"], want)
        two = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
        self.assertEqual(s.post("/tokenize", {"messages": two})[1]["tokens"],
                         s.post("/tokenize", {"messages": [{"role": "user", "content": "a\n\nb"}]})[1]["tokens"])
        status, r = s.post("/v1/chat/completions", {"model": "tiny", "messages": parts, "max_completion_tokens": 4,
                                                    "seed": 1, "logit_bias": NO_EOS})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["usage"]["prompt_tokens"], len(want))
        self.assertEqual(r["usage"]["completion_tokens"], 4)
        # a tool call and its result
        tools = [{"type": "function", "function": {"name": "f", "description": "d",
                                                    "parameters": {"type": "object", "properties": {}}}}]
        msgs = [{"role": "user", "content": "call f"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "abcDEF123", "content": "42"}]
        status, r = s.post("/v1/chat/completions", {"model": "tiny", "messages": msgs, "tools": tools,
                                                    "max_tokens": 2, "seed": 1})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["usage"]["prompt_tokens"], len(s.post("/tokenize", {"messages": msgs, "tools": tools})[1]["tokens"]))
        # a content part of the wrong type names the field
        status, r = s.post("/v1/chat/completions", chat([{"type": "text", "text": 5}]))
        self.error(status, r, 400)

    def test_logit_bias_forces_a_token(self):
        s = self.srv
        forced = s.post("/tokenize", {"content": " fox"})[1]["tokens"]
        tok = forced[-1]
        r = self.completion("anything", max_tokens=5, temperature=1.0, logit_bias={str(tok): 100})
        self.assertEqual(r["choices"][0]["text"], s.post("/detokenize", {"tokens": [tok] * 5})[1]["content"])
        # without the bias the text is another
        r = self.completion("anything", max_tokens=5, temperature=1.0, logit_bias=NO_EOS)
        self.assertNotEqual(r["choices"][0]["text"], s.post("/detokenize", {"tokens": [tok] * 5})[1]["content"])

    def test_chat_streaming_shape_matches_non_streaming(self):
        body = chat("Tell me a story", max_tokens=10, seed=7, logit_bias=NO_EOS)
        status, full = self.srv.post("/v1/chat/completions", body)
        status, ctype, events, done = self.srv.sse("/v1/chat/completions", dict(body, stream=True))
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "text/event-stream")
        self.assertTrue(done)
        self.assertGreaterEqual(len(events), 3)
        ids = {e["id"] for e in events}
        self.assertEqual(len(ids), 1)
        for e in events:
            self.assertEqual(e["object"], "chat.completion.chunk")
            self.assertNotIn("usage", e)
        first, last = events[0], events[-1]
        self.assertEqual(first["choices"][0]["delta"], {"role": "assistant", "content": ""})
        self.assertEqual(last["choices"][0]["delta"], {})
        self.assertEqual(last["choices"][0]["finish_reason"], "length")
        for e in events[1:-1]:
            self.assertEqual(list(e["choices"][0]["delta"]), ["content"])
            self.assertIsNone(e["choices"][0]["finish_reason"])
        self.assertEqual(sse_text(events)[0], full["choices"][0]["message"]["content"])

    def test_stream_include_usage(self):
        body = chat("Hi", max_tokens=5, logit_bias=NO_EOS, stream=True, stream_options={"include_usage": True})
        status, _, events, done = self.srv.sse("/v1/chat/completions", body)
        self.assertTrue(done)
        for e in events[:-1]:
            self.assertIsNone(e["usage"])
        last = events[-1]
        self.assertEqual(last["choices"], [])
        self.assertEqual(last["usage"]["completion_tokens"], 5)
        self.assertEqual(last["usage"]["total_tokens"], last["usage"]["prompt_tokens"] + 5)

    def test_completions(self):
        r = self.completion("Once upon a time", max_tokens=7, logit_bias=NO_EOS)
        self.assertEqual(r["object"], "text_completion")
        self.assertTrue(r["id"].startswith("cmpl-"))
        ch = r["choices"][0]
        self.assertEqual(set(ch), {"text", "index", "logprobs", "finish_reason"})
        self.assertEqual(ch["finish_reason"], "length")
        self.assertEqual(r["usage"]["completion_tokens"], 7)
        status, t = self.srv.post("/tokenize", {"content": "Once upon a time", "add_special": True})
        self.assertEqual(r["usage"]["prompt_tokens"], len(t["tokens"]))
        # the default is 16 tokens, as OpenAI's
        r2 = self.completion("Once upon a time", logit_bias=NO_EOS, max_tokens=None)
        self.assertEqual(r2["usage"]["completion_tokens"], 16)
        # streaming gives the same text
        body = {"prompt": "Once upon a time", "max_tokens": 7, "seed": 1, "logit_bias": NO_EOS, "stream": True}
        status, _, events, done = self.srv.sse("/v1/completions", body)
        self.assertTrue(done)
        self.assertEqual(sse_text(events)[0], ch["text"])
        self.assertEqual(events[-1]["choices"][0]["finish_reason"], "length")
        for e in events:
            self.assertEqual(e["object"], "text_completion")
        # token ids as the prompt
        r3 = self.completion(t["tokens"], max_tokens=7, logit_bias=NO_EOS)
        self.assertEqual(r3["choices"][0]["text"], ch["text"])

    def test_seed_reproducible_and_default_random(self):
        a = self.completion("Seeds", seed=123, max_tokens=10)
        b = self.completion("Seeds", seed=123, max_tokens=10)
        self.assertEqual(a["choices"][0]["text"], b["choices"][0]["text"])
        texts = {self.completion("Seeds", seed=None, max_tokens=10, logit_bias=NO_EOS)["choices"][0]["text"]
                 for _ in range(4)}
        self.assertGreater(len(texts), 1, "requests without a seed should differ")
        g1 = self.completion("Seeds", seed=5, temperature=0, max_tokens=10)
        g2 = self.completion("Seeds", seed=6, temperature=0, max_tokens=10)
        self.assertEqual(g1["choices"][0]["text"], g2["choices"][0]["text"])  # greedy ignores the seed

    def test_n_choices(self):
        body = chat("Pick", max_tokens=8, seed=40, n=3, logit_bias=NO_EOS)
        status, r = self.srv.post("/v1/chat/completions", body)
        self.assertEqual(status, 200, r)
        self.assertEqual([c["index"] for c in r["choices"]], [0, 1, 2])
        self.assertEqual(r["usage"]["completion_tokens"], 24)
        for i, c in enumerate(r["choices"]):
            solo = self.srv.post("/v1/chat/completions", chat("Pick", max_tokens=8, seed=40 + i, logit_bias=NO_EOS))[1]
            self.assertEqual(c["message"]["content"], solo["choices"][0]["message"]["content"], f"choice {i}")
        status, _, events, done = self.srv.sse("/v1/chat/completions", dict(body, stream=True))
        text = sse_text(events)
        self.assertEqual([text[i] for i in range(3)], [c["message"]["content"] for c in r["choices"]])
        finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        self.assertEqual(sorted(e["choices"][0]["index"] for e in finals), [0, 1, 2])

    def test_stop_strings(self):
        full = self.completion("Stop here", max_tokens=30, logit_bias=NO_EOS, seed=9)["choices"][0]["text"]
        self.assertGreater(len(full), 12)
        stop = full[8:11]
        want = full[:full.index(stop)]
        r = self.completion("Stop here", max_tokens=30, logit_bias=NO_EOS, seed=9, stop=[stop, "\x01never"])
        self.assertEqual(r["choices"][0]["text"], want)
        self.assertEqual(r["choices"][0]["finish_reason"], "stop")
        body = {"prompt": "Stop here", "max_tokens": 30, "logit_bias": NO_EOS, "seed": 9, "stop": stop, "stream": True}
        status, _, events, done = self.srv.sse("/v1/completions", body)
        self.assertEqual(sse_text(events)[0], want)
        self.assertEqual(events[-1]["choices"][0]["finish_reason"], "stop")

    def test_logprobs(self):
        body = chat("Probabilities", max_tokens=6, logprobs=True, top_logprobs=3, logit_bias=NO_EOS, temperature=0)
        status, r = self.srv.post("/v1/chat/completions", body)
        self.assertEqual(status, 200, r)
        content = r["choices"][0]["logprobs"]["content"]
        self.assertEqual(len(content), r["usage"]["completion_tokens"])
        for tok in content:
            self.assertEqual(set(tok), {"token", "logprob", "bytes", "top_logprobs"})
            self.assertLessEqual(tok["logprob"], 0)
            top = tok["top_logprobs"]
            self.assertEqual(len(top), 3)
            self.assertEqual([t["logprob"] for t in top], sorted((t["logprob"] for t in top), reverse=True))
            self.assertEqual(tok["token"], top[0]["token"])  # greedy takes the most likely
            self.assertAlmostEqual(tok["logprob"], top[0]["logprob"], places=5)
        joined = b"".join(bytes(t["bytes"]) for t in content).decode("utf-8", "replace")
        self.assertEqual(joined, r["choices"][0]["message"]["content"])
        status, _, events, _ = self.srv.sse("/v1/chat/completions", dict(body, stream=True))
        streamed = [t for e in events for c in e["choices"] if c.get("logprobs") for t in c["logprobs"]["content"]]
        self.assertEqual(streamed, content)
        r = self.completion("Probabilities", max_tokens=5, logprobs=2, logit_bias=NO_EOS)
        lp = r["choices"][0]["logprobs"]
        self.assertEqual(set(lp), {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
        self.assertEqual(len(lp["tokens"]), 5)
        self.assertTrue(all(len(t) <= 2 for t in lp["top_logprobs"]))

    def test_generated_ids_key_is_ignored(self):
        msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}]
        with_ids = json.loads(json.dumps(msgs))
        with_ids[1]["smoe_generated_ids"] = [3, 4, 5, 6]
        a = self.srv.post("/tokenize", {"messages": msgs})[1]["tokens"]
        b = self.srv.post("/tokenize", {"messages": with_ids})[1]["tokens"]
        self.assertEqual(a, b)

    # Ollama ------------------------------------------------------------------

    def test_ollama_generate(self):
        s = self.srv
        body = {"model": "tiny", "prompt": "Why is the sky blue?", "options": {"num_predict": 6, "seed": 3}}
        status, ctype, lines = s.ndjson("/api/generate", body)
        self.assertEqual(status, 200)
        self.assertEqual(ctype, "application/x-ndjson")
        for line in lines[:-1]:
            self.assertEqual(set(line), {"model", "created_at", "response", "done"})
            self.assertFalse(line["done"])
        last = lines[-1]
        self.assertTrue(last["done"])
        for k in ["done_reason", "context", "total_duration", "load_duration", "prompt_eval_count",
                  "prompt_eval_duration", "eval_count", "eval_duration"]:
            self.assertIn(k, last)
        status, one = s.post("/api/generate", dict(body, stream=False))
        self.assertEqual(status, 200)
        self.assertEqual(one["response"], "".join(line["response"] for line in lines))
        self.assertEqual(one["eval_count"], last["eval_count"])
        self.assertLessEqual(one["eval_count"], 6)
        # continuing from the context reuses the cache
        follow = {"model": "tiny", "prompt": "And the sea?", "context": one["context"], "stream": False,
                  "options": {"num_predict": 4, "seed": 3}}
        status, two = s.post("/api/generate", follow)
        self.assertEqual(status, 200, two)
        prompt2 = len(two["context"]) - two["eval_count"]
        self.assertLessEqual(two["prompt_eval_count"], prompt2 - len(one["context"]) + 1)
        self.assertEqual(two["context"][:len(one["context"])], one["context"])
        # the "load" request
        status, load = s.post("/api/generate", {"model": "tiny"})
        self.assertEqual((status, load["done"], load["done_reason"]), (200, True, "load"))

    def test_ollama_every_option(self):
        s = self.srv
        opts = {"num_ctx": 2048, "num_predict": 6, "temperature": 0.9, "top_k": 30, "top_p": 0.95, "min_p": 0.01,
                "repeat_penalty": 1.1, "repeat_last_n": 32, "presence_penalty": 0.2, "frequency_penalty": 0.3,
                "seed": 11, "stop": ["\u0001never"], "num_thread": 2}
        body = {"model": "tiny", "prompt": "Options", "stream": False, "options": opts}
        status, a = s.post("/api/generate", body)
        self.assertEqual(status, 200, a)
        self.assertEqual(a["eval_count"], 6)
        self.assertEqual(s.post("/api/generate", body)[1]["response"], a["response"])  # seeded
        for key in opts:
            if key == "stop":
                continue
            with self.subTest(option=key):
                bad = dict(body, options=dict(opts, **{key: "x"}))
                status, r = s.post("/api/generate", bad)
                self.assertEqual(status, 400, r)
                self.assertIn(key, r["error"])

    def test_ollama_chat(self):
        s = self.srv
        body = {"model": "tiny:latest", "messages": [{"role": "user", "content": "Hello"}],
                "options": {"num_predict": 5, "seed": 11, "temperature": 0.5}}
        status, ctype, lines = s.ndjson("/api/chat", body)
        self.assertEqual(status, 200)
        for line in lines[:-1]:
            self.assertEqual(line["message"]["role"], "assistant")
        self.assertTrue(lines[-1]["done"])
        self.assertEqual(lines[-1]["message"]["content"], "")
        status, one = s.post("/api/chat", dict(body, stream=False))
        self.assertEqual(one["message"]["content"], "".join(line["message"]["content"] for line in lines))
        # the same conversation through OpenAI with the same settings gives the same text
        status, oai = s.post("/v1/chat/completions", {"messages": body["messages"], "max_tokens": 5, "seed": 11,
                                                      "temperature": 0.5, "top_k": 40, "top_p": 0.9,
                                                      "repetition_penalty": 1.1})
        self.assertEqual(oai["choices"][0]["message"]["content"], one["message"]["content"])
        self.assertEqual(oai["usage"]["completion_tokens"], one["eval_count"])
        status, load = s.post("/api/chat", {"model": "tiny", "messages": []})
        self.assertEqual(load["done_reason"], "load")

    # batching and reuse --------------------------------------------------

    def test_same_seed_alone_and_batched(self):
        s = self.srv
        prompts = ["Alpha beta", "Gamma", "Delta epsilon zeta", "Eta"]
        bodies = [{"prompt": p, "max_tokens": 24, "seed": 100 + i, "logit_bias": NO_EOS} for i, p in enumerate(prompts)]
        # different lengths so that decode steps and prompt chunks mix
        bodies[2]["prompt"] = "Delta epsilon zeta " * 30
        alone = [s.post("/v1/completions", b)[1]["choices"][0]["text"] for b in bodies]
        m0 = s.metrics()
        results = [None] * len(bodies)
        barrier = threading.Barrier(len(bodies))

        def go(i):
            barrier.wait()
            if i % 2:
                results[i] = sse_text(s.sse("/v1/completions", dict(bodies[i], stream=True))[2])[0]
            else:
                status, r = s.post("/v1/completions", bodies[i])
                results[i] = r["choices"][0]["text"] if status == 200 else r

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        m1 = s.metrics()
        self.assertEqual(results, alone)
        steps = m1["smoe_engine_steps_total"] - m0["smoe_engine_steps_total"]
        entries = m1["smoe_engine_batch_entries_total"] - m0["smoe_engine_batch_entries_total"]
        self.assertGreater(entries, steps, "the concurrent requests were never batched together")

    def test_same_seed_streamed_concurrently(self):
        s = self.srv
        bodies = [{"prompt": f"Stream {i}", "max_tokens": 16, "seed": 7 + i, "logit_bias": NO_EOS, "stream": True}
                  for i in range(4)]
        alone = [sse_text(s.sse("/v1/completions", b)[2])[0] for b in bodies]
        out = [None] * 4
        barrier = threading.Barrier(4)

        def go(i):
            barrier.wait()
            out[i] = sse_text(s.sse("/v1/completions", bodies[i])[2])[0]

        threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(out, alone)

    def test_prefix_reuse(self):
        s = self.srv
        base = "The quick brown fox jumps over the lazy dog. " * 4
        r1 = self.completion(base, max_tokens=3)
        n1 = r1["usage"]["prompt_tokens"]
        r2 = self.completion(base + "And then it slept.", max_tokens=3)
        cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
        self.assertGreaterEqual(cached, n1 - 1)
        self.assertLess(cached, r2["usage"]["prompt_tokens"])
        # the same prompt again: everything but the last token is reused
        r3 = self.completion(base + "And then it slept.", max_tokens=3)
        self.assertEqual(r3["usage"]["prompt_tokens_details"]["cached_tokens"], r3["usage"]["prompt_tokens"] - 1)
        # the reuse gives the same answer as a fresh computation
        self.assertEqual(r3["choices"][0]["text"], r2["choices"][0]["text"])
        # Ollama counts only the tokens really processed
        body = {"model": "tiny", "prompt": base, "raw": True, "stream": False, "options": {"num_predict": 2}}
        s.post("/api/generate", body)
        status, o = s.post("/api/generate", body)
        self.assertEqual(o["prompt_eval_count"], 1)
        m = s.metrics()
        self.assertGreater(m["smoe_prompt_tokens_cached_total"], 0)

    # cancellation ----------------------------------------------------------

    def long_stream(self, path="/v1/completions", extra=None):
        body = {"prompt": "Go on and on", "max_tokens": 3900, "logit_bias": NO_EOS, "stream": True, "seed": 1}
        if path == "/api/generate":
            body = {"model": "tiny", "prompt": "Go on and on", "options": {"num_predict": 3900, "seed": 1}}
        body.update(extra or {})
        data = json.dumps(body).encode()
        return self.srv.raw(http_request_bytes("POST", path, data, port=self.srv.port))

    def wait_idle(self):
        self.srv.wait_metric("smoe_active_sequences", lambda v: v == 0)
        self.srv.wait_metric("smoe_queue_length", lambda v: v == 0)

    def test_disconnect_cancels(self):
        s = self.srv
        self.wait_idle()
        for path, marker in [("/v1/completions", b"data: {"), ("/api/generate", b"\"done\":false")]:
            with self.subTest(path=path):
                m0 = s.metrics()
                sock = self.long_stream(path)
                got = read_until(sock, marker * 1)
                got += sock.recv(4096)
                self.assertIn(b"200 OK", got)
                self.assertEqual(s.metric("smoe_active_sequences"), 1)
                s.wait_metric("smoe_kv_cache_busy_tokens", lambda v: v > 0)
                sock.close()
                s.wait_metric("smoe_active_sequences", lambda v: v == 0)
                m1 = s.metrics()
                self.assertEqual(m1["smoe_sequences_cancelled_total"], m0["smoe_sequences_cancelled_total"] + 1)
                self.assertLess(m1["smoe_generated_tokens_total"] - m0["smoe_generated_tokens_total"], 3900)
                # cancelled before the next step once the server saw the client go,
                # and its KV positions are no longer held
                self.assertLessEqual(m1["smoe_cancel_lag_steps_max"], 1)
                self.assertEqual(m1["smoe_kv_cache_busy_tokens"], 0)
        # a non-streaming request whose client leaves
        m0 = s.metrics()
        body = json.dumps({"prompt": "x", "max_tokens": 3900, "logit_bias": NO_EOS}).encode()
        sock = s.raw(http_request_bytes("POST", "/v1/completions", body, port=s.port))
        s.wait_metric("smoe_active_sequences", lambda v: v == 1)
        sock.close()
        s.wait_metric("smoe_active_sequences", lambda v: v == 0)
        m1 = s.metrics()
        self.assertEqual(m1["smoe_sequences_cancelled_total"], m0["smoe_sequences_cancelled_total"] + 1)
        # and the server goes on serving
        self.assertEqual(s.post("/v1/chat/completions", chat("still there?"))[0], 200)

    def test_long_prompt_prefilled_in_chunks(self):
        """A running stream gets a token every step while a long prompt is
        prefilled (64 prompt tokens per step by default), not one token for
        the whole prefill."""
        s = self.srv
        self.wait_idle()
        sock = self.long_stream()
        read_until(sock, b"data: {")
        try:
            m0 = s.metrics()
            prompt = list(range(1000, 1384))  # 384 tokens no cache holds: 6 chunks of 64
            status, r = s.post("/v1/completions", {"prompt": prompt, "max_tokens": 1}, timeout=600)
            m1 = s.metrics()
            self.assertEqual(status, 200, r)
            self.assertEqual(r["usage"]["prompt_tokens"], 384)
            self.assertEqual(r["usage"]["prompt_tokens_details"]["cached_tokens"], 0)
            # the stream's tokens during the prefill: at least one per chunk but the last
            generated = m1["smoe_generated_tokens_total"] - m0["smoe_generated_tokens_total"] - 1
            self.assertGreaterEqual(generated, 384 // 64 - 1)
        finally:
            sock.close()
        self.wait_idle()

    def test_metrics(self):
        s = self.srv
        s.post("/v1/chat/completions", chat("metrics", max_tokens=3))
        s.post("/v1/chat/completions", chat("metrics", max_tokens=-3))
        status, hdrs, data = s.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        text = data.decode()
        for name in ["smoe_requests_total", "smoe_prompt_tokens_total", "smoe_generated_tokens_total",
                     "smoe_generation_tokens_per_second", "smoe_queue_length", "smoe_active_sequences",
                     "smoe_kv_cache_used_tokens", "smoe_kv_cache_usage_ratio",
                     "smoe_time_to_first_token_seconds_bucket", "smoe_inter_token_latency_seconds_bucket"]:
            self.assertIn(name, text)
        self.assertIn('smoe_requests_total{endpoint="/v1/chat/completions",status="200"}', text)
        self.assertIn('smoe_requests_total{endpoint="/v1/chat/completions",status="400"}', text)
        m = s.metrics()
        self.assertEqual(m["smoe_slots"], 4)
        self.assertEqual(m["smoe_kv_cache_capacity_tokens"], 4 * 4096)
        self.assertGreater(m["smoe_time_to_first_token_seconds_count"], 0)

    # tokenize ----------------------------------------------------------------

    def test_tokenize_detokenize(self):
        s = self.srv
        for text in ["Hello world", " leading space", "naïve café ☕ 𝄞", "[INST] not control", "a\n\nb\tc", ""]:
            with self.subTest(text=text):
                status, t = s.post("/tokenize", {"content": text})
                self.assertEqual(status, 200)
                status, d = s.post("/detokenize", {"tokens": t["tokens"]})
                self.assertEqual(d["content"], text)
        status, t = s.post("/tokenize", {"content": "Hi", "with_pieces": True, "add_special": True})
        self.assertEqual(t["tokens"][0]["id"], 1)
        self.assertIn("piece", t["tokens"][1])
        self.assertEqual(s.post("/detokenize", {"tokens": [1, -5]})[0], 400)
        self.assertEqual(s.post("/detokenize", {"tokens": "x"})[0], 400)
        self.assertEqual(s.post("/tokenize", {"nothing": 1})[0], 400)

    @unittest.skipUnless(HAVE_SHARED, "../shared (real vocabularies, golden prompts) is absent")
    def test_tokenize_golden_v3(self):
        for folder in sorted(os.listdir(GOLDEN)):
            want = os.path.join(GOLDEN, folder, "tokens_v3.json")
            if not os.path.exists(want):
                continue
            with self.subTest(folder=folder):
                with open(os.path.join(GOLDEN, folder, "sample.json")) as f:
                    sample = json.load(f)
                with open(want) as f:
                    tokens = json.load(f)["tokens"]
                status, r = self.srv.post("/tokenize", sample)
                self.assertEqual(status, 200, r)
                self.assertEqual(r["tokens"], tokens)

    # auth ----------------------------------------------------------------------

    def test_options_without_cors(self):
        status, hdrs, _ = self.srv.request("OPTIONS", "/v1/chat/completions")
        self.assertEqual(status, 204)
        self.assertNotIn("access-control-allow-origin", hdrs)
        status, hdrs, _ = self.srv.request("GET", "/health")
        self.assertNotIn("access-control-allow-origin", hdrs)


@unittest.skipUnless(HAVE_SHARED, "../shared (real vocabularies, golden prompts) is absent")
class GoldenV1Test(unittest.TestCase):
    def test_tokenize_golden_v1(self):
        d = Workdir()
        srv = Server(make_model(d.file("v1.gguf"), V1_VOCAB), "--parallel", 1)
        try:
            n = 0
            for folder in sorted(os.listdir(GOLDEN)):
                want = os.path.join(GOLDEN, folder, "tokens_v1.json")
                if not os.path.exists(want):
                    continue
                with open(os.path.join(GOLDEN, folder, "sample.json")) as f:
                    sample = json.load(f)
                with open(want) as f:
                    tokens = json.load(f)["tokens"]
                status, r = srv.post("/tokenize", sample)
                self.assertEqual(r["tokens"], tokens, folder)
                n += 1
            self.assertGreater(n, 0)
        finally:
            srv.check_clean_exit(self, srv.stop())
            d.cleanup()


class FlagsTest(unittest.TestCase):
    """Servers started with particular flags: API key, CORS, queue, timeouts, SIGTERM."""

    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = make_model(cls.dir.file("tiny.gguf"), V3_VOCAB)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_api_key_and_cors(self):
        srv = Server(self.model, "--api-key", "s3cret-key", "--cors", "https://app.example")
        try:
            good = {"Authorization": "Bearer s3cret-key"}
            for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer s3cret-ke"},
                            {"Authorization": "Bearer s3cret-key2"}, {"Authorization": "s3cret-key"},
                            {"Authorization": "Basic czNjcmV0LWtleQ=="}]:
                with self.subTest(headers=headers):
                    status, r = srv.json("POST", "/v1/chat/completions", chat("x", max_tokens=1), headers)
                    self.assertEqual(status, 401)
                    self.assertEqual(r["error"]["code"], "invalid_api_key")
                    status, r = srv.json("GET", "/api/tags", None, headers)
                    self.assertEqual(status, 401)
                    self.assertIsInstance(r["error"], str)
            # a big body with a bad key: the 401 comes after the body, not as a reset mid-upload
            status, r = srv.json("POST", "/v1/chat/completions", b"x" * 3000000, {"Authorization": "Bearer no"})
            self.assertEqual(status, 401)
            self.assertEqual(r["error"]["code"], "invalid_api_key")
            self.assertEqual(srv.json("POST", "/v1/chat/completions", chat("x", max_tokens=1), good)[0], 200)
            self.assertEqual(srv.json("GET", "/v1/models", None, good)[0], 200)
            self.assertEqual(srv.request("GET", "/metrics")[0], 401)
            status, hdrs, _ = srv.request("GET", "/health")
            self.assertEqual(status, 200)  # public
            self.assertEqual(hdrs["access-control-allow-origin"], "https://app.example")
            status, hdrs, _ = srv.request("OPTIONS", "/v1/chat/completions",
                                          headers={"Origin": "https://app.example",
                                                   "Access-Control-Request-Method": "POST",
                                                   "Access-Control-Request-Headers": "authorization, content-type"})
            self.assertEqual(status, 204)  # preflight without the key
            self.assertEqual(hdrs["access-control-allow-origin"], "https://app.example")
            self.assertIn("POST", hdrs["access-control-allow-methods"])
            self.assertIn("authorization", hdrs["access-control-allow-headers"])
        finally:
            srv.check_clean_exit(self, srv.stop())

    def test_api_key_file(self):
        path = self.dir.file("key.txt")
        with open(path, "w") as f:
            f.write("from-a-file\n")
        srv = Server(self.model, "--api-key-file", path)
        try:
            self.assertEqual(srv.request("GET", "/v1/models", headers={"Authorization": "Bearer from-a-file"})[0], 200)
            self.assertEqual(srv.request("GET", "/v1/models")[0], 401)
        finally:
            srv.check_clean_exit(self, srv.stop())

    def test_queue_full_gives_503(self):
        srv = Server(self.model, "--parallel", 1, "--queue", 1, "--ctx-size", 4096, "--max-tokens", 4000)
        try:
            body = json.dumps({"prompt": "x", "max_tokens": 3900, "logit_bias": NO_EOS, "stream": True}).encode()
            running = srv.raw(http_request_bytes("POST", "/v1/completions", body, port=srv.port))
            read_until(running, b"data: ")
            waiting = srv.raw(http_request_bytes("POST", "/v1/completions", body, port=srv.port))
            srv.wait_metric("smoe_queue_length", lambda v: v == 1)
            status, hdrs, data = srv.request("POST", "/v1/completions", json.loads(body))
            self.assertEqual(status, 503)
            self.assertEqual(hdrs.get("retry-after"), "1")
            self.assertEqual(json.loads(data)["error"]["code"], "queue_full")
            status, r = srv.post("/api/generate", {"model": "tiny", "prompt": "x"})
            self.assertEqual(status, 503)
            self.assertIsInstance(r["error"], str)
            # the waiting client leaves: dropped from the queue
            waiting.close()
            srv.wait_metric("smoe_queue_length", lambda v: v == 0)
            running.close()
            srv.wait_metric("smoe_active_sequences", lambda v: v == 0)
            self.assertEqual(srv.post("/v1/completions", {"prompt": "x", "max_tokens": 2})[0], 200)
        finally:
            srv.check_clean_exit(self, srv.stop())

    def test_silent_and_slow_clients_are_dropped(self):
        srv = Server(self.model, "--timeout", 1, "--read-timeout", 2)
        try:
            t0 = time.monotonic()
            silent = srv.raw(b"")
            silent.settimeout(20)
            self.assertEqual(silent.recv(100), b"")  # closed by the server
            self.assertLess(time.monotonic() - t0, 15)
            silent.close()
            # a body that trickles in slower than --read-timeout allows
            slow = srv.raw(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            slow.settimeout(20)
            t0 = time.monotonic()
            closed = False
            for _ in range(100):
                try:
                    slow.sendall(b" ")
                except OSError:
                    closed = True
                    break
                try:
                    slow.settimeout(0.5)
                    if slow.recv(100) == b"":
                        closed = True
                        break
                except socket.timeout:
                    pass
            self.assertTrue(closed, "the slow client was not dropped")
            self.assertLess(time.monotonic() - t0, 30)
            slow.close()
            self.assertEqual(srv.json("GET", "/health")[0], 200)
        finally:
            srv.check_clean_exit(self, srv.stop())

    def test_sigterm_finishes_in_flight_requests(self):
        srv = Server(self.model, "--parallel", 2)
        body = json.dumps({"prompt": "finish me", "max_tokens": 60, "logit_bias": NO_EOS, "stream": True}).encode()
        sock = srv.raw(http_request_bytes("POST", "/v1/completions", body, port=srv.port))
        got = read_until(sock, b"data: {")
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for("shutting down")
        got += read_until(sock, b"data: [DONE]")
        sock.close()
        self.assertIn(b"data: [DONE]", got)
        self.assertIn(b'"finish_reason":"length"', got)
        rc = srv.stop()
        srv.check_clean_exit(self, rc)
        srv.wait_for("stopped")

    def test_sigterm_grace_over_cancels(self):
        srv = Server(self.model, "--ctx-size", 4096, "--max-tokens", 4000, "--shutdown-timeout", 0)
        body = json.dumps({"prompt": "x", "max_tokens": 3900, "logit_bias": NO_EOS, "stream": True}).encode()
        sock = srv.raw(http_request_bytes("POST", "/v1/completions", body, port=srv.port))
        got = read_until(sock, b"data: {")
        srv.proc.send_signal(signal.SIGTERM)
        got += read_until(sock, b"shutting_down")
        sock.close()
        self.assertIn(b"shutting_down", got)
        srv.check_clean_exit(self, srv.stop())

    def test_limit_flags(self):
        srv = Server(self.model, "--max-logprobs", 2, "--max-n", 2, "--max-tokens", 16)
        try:
            for patch, param in [({"logprobs": True, "top_logprobs": 3}, "top_logprobs"), ({"n": 3}, "n"),
                                 ({"max_tokens": 17}, "max_tokens")]:
                with self.subTest(patch=patch):
                    status, r = srv.post("/v1/chat/completions", chat("hi", **patch))
                    self.assertEqual(status, 400, r)
                    self.assertEqual(r["error"]["param"], param)
            status, r = srv.post("/v1/chat/completions", chat("hi", logprobs=True, top_logprobs=2, n=2, max_tokens=16,
                                                              logit_bias=NO_EOS))
            self.assertEqual(status, 200, r)
            self.assertEqual(r["usage"]["completion_tokens"], 32)
        finally:
            srv.check_clean_exit(self, srv.stop(signal.SIGINT))  # SIGINT exits 0 as SIGTERM does

    def test_health_503_while_loading(self):
        """The server listens before it loads the model.  A FIFO as the model
        file holds the load (open() waits for a writer) for as long as the
        test wants; the test then opens and closes the FIFO, and the load
        fails cleanly (not a GGUF file)."""
        fifo = self.dir.file("loading.gguf")
        os.mkfifo(fifo)
        srv = Server(fifo, wait_ready=False)
        try:
            status, hdrs, _ = srv.request("GET", "/health")
            self.assertEqual(status, 503)
            status, hdrs, data = srv.request("POST", "/v1/chat/completions", chat("hi"))
            self.assertEqual(status, 503)
            self.assertEqual(hdrs.get("retry-after"), "1")
            self.assertEqual(json.loads(data)["error"]["code"], "loading")
            status, r = srv.post("/api/generate", {"model": "tiny", "prompt": "x"})
            self.assertEqual(status, 503)
            self.assertIsInstance(r["error"], str)
            self.assertEqual(srv.request("GET", "/")[0], 200)  # liveness, not readiness
        finally:
            with open(fifo, "wb"):
                pass  # lets the load go on (and fail)
            rc = srv.proc.wait(60)
            srv.reader.join(10)
        log = srv.log()
        self.assertEqual(rc, 1, log)
        self.assertNotIn("Sanitizer", log)
        self.assertNotIn("runtime error", log)

    def test_max_connections(self):
        srv = Server(self.model, "--max-connections", 2)
        try:
            def health(sock):
                """The status line of a GET /health on sock, or None when the server refused it."""
                try:
                    sock.sendall(http_request_bytes("GET", "/health", b"", {}, srv.port))
                    reply = read_until(sock, b"\r\n\r\n")
                except (ConnectionResetError, BrokenPipeError):
                    return None
                return reply.split(b"\r\n", 1)[0] if reply else None

            # two kept-alive connections use up --max-connections.  The server
            # frees a closed connection asynchronously, so a refusal right after
            # an earlier test's connection closed is retried (polling).
            held = []
            end = time.monotonic() + 30
            while len(held) < 2:
                sock = srv.raw(None)
                if health(sock) == b"HTTP/1.1 200 OK":
                    held.append(sock)
                    continue
                sock.close()
                self.assertLess(time.monotonic(), end, "a connection below the limit was refused")
                time.sleep(0.05)
            third = srv.raw(None)
            self.assertIsNone(health(third))  # refused: the limit is reached while both are held
            third.close()
            for sock in held:  # still served
                self.assertEqual(health(sock), b"HTTP/1.1 200 OK")
                sock.close()
            end = time.monotonic() + 30
            while True:  # once they are closed, connections are accepted again
                sock = srv.raw(None)
                ok = health(sock) == b"HTTP/1.1 200 OK"
                sock.close()
                if ok:
                    break
                self.assertLess(time.monotonic(), end, "connections are not accepted again")
                time.sleep(0.05)
        finally:
            srv.check_clean_exit(self, srv.stop())

    def test_bad_flags(self):
        import subprocess
        from smoe_testlib import SMOE
        for args in [["--port", "70000"], ["--parallel", "0"], ["--bogus", "1"], ["--kv-type", "f8"],
                     ["--api-key", ""], ["--host", "not an address"]]:
            with self.subTest(args=args):
                p = subprocess.run([SMOE, "serve", "-m", self.model, *args], capture_output=True, text=True,
                                   timeout=60)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn("smoe", p.stderr)
                self.assertNotIn("Sanitizer", p.stderr)


if __name__ == "__main__":
    unittest.main()
