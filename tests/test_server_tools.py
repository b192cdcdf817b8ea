"""`smoe serve` function calling (issue 6): OpenAI tools / tool_choice /
parallel_tool_calls and Ollama tools over raw HTTP, with a tiny synthetic
model that has the real Mistral v3 vocabulary (so [TOOL_CALLS] is a real
control token and the prompts are the real ones).  Skips when ../shared
does not have the vocabulary.

Random weights make the constraint the only thing that shapes a call: every
tool_calls entry must name a declared tool and its arguments must validate
against that tool's parameters schema (python3-jsonschema).  Streamed
deltas must reassemble to the non-streamed calls of the same seed."""
import json
import os
import unittest

from server_lib import EOS, V1_VOCAB, V3_VOCAB, Server, make_model
from smoe_testlib import Workdir

try:
    import jsonschema
except ImportError:  # validation is skipped, the shapes are still checked
    jsonschema = None

HAVE_V3 = os.path.exists(V3_VOCAB)
HAVE_V1 = os.path.exists(V1_VOCAB)
NO_EOS = {str(EOS): -100}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 12},
        "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
ADD = {"type": "function", "function": {
    "name": "add", "parameters": {"type": "object", "properties": {
        "a": {"type": "integer", "minimum": -100, "maximum": 100},
        "b": {"type": "integer", "minimum": -100, "maximum": 100}},
        "required": ["a", "b"], "additionalProperties": False}}}
TOOLS = [WEATHER, ADD]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def body(**kw):
    b = {"model": "tiny", "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
         "tools": TOOLS, "max_tokens": 200, "seed": 3, "logit_bias": NO_EOS}
    b.update(kw)
    return b


@unittest.skipUnless(HAVE_V3, "needs ../shared/tokenizers/mistral-v3.model")
class ToolsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.model = make_model(cls.dir.file("tiny.gguf"), V3_VOCAB)
        cls.srv = Server(cls.model, "--parallel", 2, "--ctx-size", 2048, "--max-tokens", 400)

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        try:
            log = cls.srv.log()
            assert "Sanitizer" not in log and "runtime error" not in log, log[-4000:]
            assert rc == 0, f"exit code {rc}: {log[-3000:]}"
        finally:
            cls.dir.cleanup()

    def check_calls(self, calls, names=None):
        self.assertIsInstance(calls, list)
        self.assertGreaterEqual(len(calls), 1)
        for c in calls:
            self.assertEqual(c["type"], "function", c)
            self.assertRegex(c["id"], r"^[a-zA-Z0-9]{9}$")
            name = c["function"]["name"]
            self.assertIn(name, names or SCHEMAS)
            self.assertIsInstance(c["function"]["arguments"], str)
            args = json.loads(c["function"]["arguments"])
            if jsonschema:
                jsonschema.validate(args, SCHEMAS[name])
        return calls

    def chat(self, **kw):
        status, r = self.srv.post("/v1/chat/completions", body(**kw))
        self.assertEqual(status, 200, r)
        return r["choices"][0]

    def test_required_gives_valid_calls(self):
        counts = []
        for seed in range(1, 7):
            ch = self.chat(tool_choice="required", seed=seed)
            self.assertEqual(ch["finish_reason"], "tool_calls", ch)
            self.assertIsNone(ch["message"]["content"])
            counts.append(len(self.check_calls(ch["message"]["tool_calls"])))
        self.assertGreater(max(counts), 1, "parallel calls are allowed by default: some seed should make several")

    def test_cut_short_by_max_tokens(self):
        # too few tokens for a whole call: no tool_calls, the partial
        # document comes back as content, finish_reason length
        ch = self.chat(tool_choice="required", max_tokens=3)
        self.assertEqual(ch["finish_reason"], "length")
        self.assertNotIn("tool_calls", ch["message"])
        self.assertTrue(ch["message"]["content"].lstrip().startswith("[{"), ch)
        status, _, events, done = self.srv.sse("/v1/chat/completions", body(tool_choice="required", max_tokens=8,
                                                                            stream=True))
        self.assertEqual(status, 200)
        self.assertTrue(done)
        self.assertEqual([c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]], ["length"])

    def test_parallel_false_gives_one_call(self):
        for seed in range(1, 4):
            ch = self.chat(tool_choice="required", parallel_tool_calls=False, seed=seed)
            self.assertEqual(len(self.check_calls(ch["message"]["tool_calls"])), 1)

    def test_named_choice_picks_that_function(self):
        for seed in range(1, 4):
            ch = self.chat(tool_choice={"type": "function", "function": {"name": "add"}}, seed=seed)
            calls = self.check_calls(ch["message"]["tool_calls"], names=["add"])
            self.assertTrue(all(c["function"]["name"] == "add" for c in calls))

    def test_none_gives_plain_content(self):
        ch = self.chat(tool_choice="none", max_tokens=6)
        self.assertNotIn("tool_calls", ch["message"])
        self.assertIsInstance(ch["message"]["content"], str)
        self.assertEqual(ch["finish_reason"], "length")

    def test_auto_armed_by_the_tool_calls_token(self):
        # a strong bias on [TOOL_CALLS] (id 5 in the v3 vocabulary) makes the
        # model start a call at once; the grammar must then carry it through
        bias = dict(NO_EOS, **{"5": 100})
        ch = self.chat(tool_choice="auto", logit_bias=bias)
        self.assertEqual(ch["finish_reason"], "tool_calls", ch)
        self.assertIsNone(ch["message"]["content"])
        self.check_calls(ch["message"]["tool_calls"])
        # without it, random text: no calls, content as it came
        ch = self.chat(tool_choice="auto", max_tokens=5, logit_bias=dict(NO_EOS, **{"5": -100}))
        self.assertNotIn("tool_calls", ch["message"])
        self.assertEqual(ch["finish_reason"], "length")

    def test_text_before_the_trigger_is_content(self):
        # a moderate bias on [TOOL_CALLS]: the model writes a few tokens first
        # (for this synthetic model and these seeds), then calls
        bias = dict(NO_EOS, **{"5": 10})
        both = 0
        for seed in (1, 2, 3):
            ch = self.chat(tool_choice="auto", seed=seed, max_tokens=60, logit_bias=bias)
            calls = ch["message"].get("tool_calls")
            if calls:
                self.check_calls(calls)
                self.assertEqual(ch["finish_reason"], "tool_calls")
                both += bool(ch["message"]["content"])
            status, _, events, done = self.srv.sse("/v1/chat/completions", body(
                tool_choice="auto", seed=seed, max_tokens=60, logit_bias=bias, stream=True))
            text, streamed = "", {}
            for ev in events:
                for c in ev["choices"]:
                    text += c["delta"].get("content") or ""
                    for tc in c["delta"].get("tool_calls", []):
                        streamed.setdefault(tc["index"], ["", ""])
                        streamed[tc["index"]][0] += tc["function"].get("name", "")
                        streamed[tc["index"]][1] += tc["function"].get("arguments", "")
            self.assertEqual(text, ch["message"]["content"] or "")
            self.assertEqual([(n, json.loads(a)) for n, a in streamed.values()],
                             [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls or []])
        self.assertGreater(both, 0, "no seed gave both content and calls")

    def test_stream_reassembles_to_the_same_calls(self):
        trigger = dict(NO_EOS, **{"5": 100})  # auto: [TOOL_CALLS] first, then the grammar
        for choice, bias in (("required", NO_EOS), ({"type": "function", "function": {"name": "get_weather"}}, NO_EOS),
                             ("auto", trigger)):
            for seed in (1, 2):
                ch = self.chat(tool_choice=choice, seed=seed, logit_bias=bias)
                # the streamed fragments are the model's own text, the
                # non-streamed arguments are re-serialized: same JSON value
                want = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                        for c in ch["message"]["tool_calls"]]
                status, _, events, done = self.srv.sse("/v1/chat/completions",
                                                       body(tool_choice=choice, seed=seed, stream=True,
                                                            logit_bias=bias))
                self.assertEqual(status, 200)
                self.assertTrue(done)
                calls, finish = {}, None
                for ev in events:
                    for c in ev["choices"]:
                        d = c["delta"]
                        self.assertFalse(d.get("content"), d)  # the document never leaks as content
                        for tc in d.get("tool_calls", []):
                            i = tc["index"]
                            if i not in calls:  # the first delta of a call: id, type, name
                                self.assertEqual(tc["type"], "function")
                                self.assertRegex(tc["id"], r"^[a-zA-Z0-9]{9}$")
                                calls[i] = [tc["function"]["name"], tc["function"].get("arguments", "")]
                            else:
                                self.assertNotIn("name", tc["function"])
                                calls[i][1] += tc["function"]["arguments"]
                        if c["finish_reason"]:
                            finish = c["finish_reason"]
                self.assertEqual(finish, "tool_calls")
                self.assertEqual(sorted(calls), list(range(len(calls))))
                self.assertEqual([(calls[i][0], json.loads(calls[i][1])) for i in sorted(calls)], want)

    def test_round_trip_with_tool_results(self):
        ch = self.chat(tool_choice="required", parallel_tool_calls=False)
        call = ch["message"]["tool_calls"][0]
        msgs = body()["messages"] + [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "22 degrees"}]
        ch2 = self.chat(messages=msgs, tool_choice="none", max_tokens=4)
        self.assertIsInstance(ch2["message"]["content"], str)
        # an unknown call id is the chat renderer's 400
        bad = msgs[:-1] + [{"role": "tool", "tool_call_id": "zzzzzzzzz", "content": "x"}]
        status, r = self.srv.post("/v1/chat/completions", body(messages=bad))
        self.assertEqual(status, 400, r)

    def test_bad_tools_are_400s_naming_the_problem(self):
        cases = [
            ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "name"),
            ({"tools": [WEATHER, WEATHER]}, "get_weather"),
            ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"x": {"type": "string", "frobnicate": 1}}}}}]}, "frobnicate"),
            ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "array", "minItems": 3, "maxItems": 1}}}]}, "f"),
            ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "nope"),
            ({"tool_choice": "sometimes"}, "sometimes"),
            ({"tools": "x"}, "tools"),
            ({"tools": [WEATHER], "response_format": {"type": "json_object"}, "tool_choice": "required"},
             "response_format"),
        ]
        for extra, word in cases:
            status, r = self.srv.post("/v1/chat/completions", body(**extra))
            self.assertEqual(status, 400, (extra, r))
            self.assertIn(word, r["error"]["message"], (extra, r))
            self.assertIsNotNone(r["error"]["param"], r)

    def test_ollama_chat_tool_calls_as_objects(self):
        ob = {"model": "tiny", "messages": body()["messages"], "tools": TOOLS, "stream": False,
              "options": {"seed": 4, "num_predict": 200}, "tool_choice": "required"}
        # Ollama has no tool_choice; with auto, bias [TOOL_CALLS] via the OpenAI
        # extension is not available either: required is passed through
        status, r = self.srv.post("/api/chat", ob)
        self.assertEqual(status, 200, r)
        calls = r["message"]["tool_calls"]
        self.assertGreaterEqual(len(calls), 1)
        for c in calls:
            name = c["function"]["name"]
            self.assertIn(name, SCHEMAS)
            self.assertIsInstance(c["function"]["arguments"], dict)
            if jsonschema:
                jsonschema.validate(c["function"]["arguments"], SCHEMAS[name])
        # streamed: the same calls in a line before the final one
        ob["stream"] = True
        status, _, lines = self.srv.ndjson("/api/chat", ob)
        self.assertEqual(status, 200)
        self.assertTrue(lines[-1]["done"])
        streamed = [c for ln in lines for c in ln.get("message", {}).get("tool_calls", [])]
        self.assertEqual([(c["function"]["name"], c["function"]["arguments"]) for c in streamed],
                         [(c["function"]["name"], c["function"]["arguments"]) for c in calls])
        self.assertEqual("".join(ln["message"]["content"] for ln in lines), "")
        # a round trip: the call and its result in the history
        ob["stream"] = False
        ob.pop("tool_choice")
        ob["options"]["num_predict"] = 4
        # Ollama's history carries no ids: the server pairs results with calls
        bare = [{"function": c["function"]} for c in calls]
        results = [{"role": "tool", "content": "22", "tool_name": c["function"]["name"]} for c in calls]
        ob["messages"] = ob["messages"] + [{"role": "assistant", "content": "", "tool_calls": bare}] + results
        status, r = self.srv.post("/api/chat", ob)
        self.assertEqual(status, 200, r)


def sse_message(events):
    """A streamed chat choice reassembled: content, [(name, arguments value)], finish_reason."""
    text, calls, finish = "", {}, None
    for ev in events:
        for c in ev["choices"]:
            d = c["delta"]
            text += d.get("content") or ""
            for tc in d.get("tool_calls", []):
                i = tc["index"]
                if i not in calls:
                    assert tc["type"] == "function" and len(tc["id"]) == 9, tc
                    calls[i] = [tc["function"]["name"], tc["function"].get("arguments", "")]
                else:
                    assert "name" not in tc["function"], tc
                    calls[i][1] += tc["function"]["arguments"]
            finish = c["finish_reason"] or finish
    assert sorted(calls) == list(range(len(calls))), calls
    return text, [(calls[i][0], json.loads(calls[i][1])) for i in sorted(calls)], finish


@unittest.skipUnless(HAVE_V1, "needs ../shared/tokenizers/mistral-v1.model")
class V1ToolsTest(unittest.TestCase):
    """Models without tool tokens (the v1 vocabulary of Mixtral 8x7B): the
    tools instruction is in the prompt and the whole answer is constrained to
    {"tool_calls": [...]} or (auto) {"content": "..."} (tools.h)."""

    check_calls = ToolsTest.check_calls
    chat = ToolsTest.chat

    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        os.mkdir(cls.dir.file("v1"))  # the model id is the file name: "tiny"
        cls.model = make_model(cls.dir.file("v1/tiny.gguf"), V1_VOCAB)
        cls.srv = Server(cls.model, "--parallel", 2, "--ctx-size", 2048, "--max-tokens", 400)

    tearDownClass = classmethod(ToolsTest.tearDownClass.__func__)

    def test_required_gives_valid_calls(self):
        for seed in range(1, 5):
            ch = self.chat(tool_choice="required", seed=seed)
            self.assertEqual(ch["finish_reason"], "tool_calls", ch)
            self.assertIsNone(ch["message"]["content"])
            self.check_calls(ch["message"]["tool_calls"])
        ch = self.chat(tool_choice={"type": "function", "function": {"name": "add"}}, parallel_tool_calls=False)
        self.assertEqual([c["function"]["name"] for c in self.check_calls(ch["message"]["tool_calls"])], ["add"])

    def test_auto_gives_calls_or_content(self):
        kinds = set()
        for seed in range(1, 7):
            ch = self.chat(tool_choice="auto", seed=seed)
            m = ch["message"]
            kinds.add(ch["finish_reason"])
            if ch["finish_reason"] == "tool_calls":
                self.assertIsNone(m["content"])
                self.check_calls(m["tool_calls"])
            elif ch["finish_reason"] == "stop":  # {"content": ...}: its text only
                self.assertNotIn("tool_calls", m)
                self.assertIsInstance(m["content"], str)
                self.assertFalse(m["content"].lstrip().startswith('{"content"'), m)
            else:  # cut short: the partial object comes back as it is
                self.assertEqual(ch["finish_reason"], "length")
                self.assertNotIn("tool_calls", m)
                self.assertTrue(m["content"].lstrip().startswith("{"), m)
        # this synthetic model (seeds 1..6) takes both branches of the object
        self.assertLessEqual({"tool_calls", "stop"}, kinds)

    def test_none_gives_plain_text_without_the_instruction(self):
        ch = self.chat(tool_choice="none", max_tokens=6)
        self.assertNotIn("tool_calls", ch["message"])
        self.assertIsInstance(ch["message"]["content"], str)
        self.assertEqual(ch["finish_reason"], "length")
        _, with_tools = self.srv.post("/v1/chat/completions", body(tool_choice="required", max_tokens=1))
        _, without = self.srv.post("/v1/chat/completions", body(tool_choice="none", max_tokens=1))
        _, no_tools = self.srv.post("/v1/chat/completions", body(tools=[], max_tokens=1))
        self.assertEqual(without["usage"]["prompt_tokens"], no_tools["usage"]["prompt_tokens"])
        self.assertGreater(with_tools["usage"]["prompt_tokens"], without["usage"]["prompt_tokens"] + 50)

    def test_stream_equals_non_streamed(self):
        compared = 0
        for choice in ("required", "auto", {"type": "function", "function": {"name": "get_weather"}}):
            for seed in (1, 2, 3):
                ch = self.chat(tool_choice=choice, seed=seed)
                status, _, events, done = self.srv.sse("/v1/chat/completions",
                                                       body(tool_choice=choice, seed=seed, stream=True))
                self.assertEqual(status, 200)
                self.assertTrue(done)
                text, calls, finish = sse_message(events)
                self.assertEqual(finish, ch["finish_reason"])
                if finish == "length":
                    continue  # the partial object: raw text vs the decoded part of "content"
                compared += 1
                want = [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                        for c in ch["message"].get("tool_calls", [])]
                self.assertEqual(calls, want)
                self.assertEqual(text, ch["message"]["content"] or "")
        self.assertGreaterEqual(compared, 3)

    def test_round_trip_with_tool_results(self):
        ch = self.chat(tool_choice="required", parallel_tool_calls=False)
        call = ch["message"]["tool_calls"][0]
        msgs = body()["messages"] + [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "22 degrees"}]
        for choice in ("auto", "required"):
            ch2 = self.chat(messages=msgs, tool_choice=choice, seed=5)
            if ch2["finish_reason"] == "tool_calls":
                self.check_calls(ch2["message"]["tool_calls"])
            else:
                self.assertNotEqual(choice, "required")
                self.assertIsInstance(ch2["message"]["content"], str)
        ch3 = self.chat(messages=msgs + [{"role": "assistant", "content": "It is 22."},
                                         {"role": "user", "content": "And Rome?"}], tool_choice="none", max_tokens=4)
        self.assertIsInstance(ch3["message"]["content"], str)
        bad = msgs[:-1] + [{"role": "tool", "tool_call_id": "zzzzzzzzz", "content": "x"}]
        status, r = self.srv.post("/v1/chat/completions", body(messages=bad))
        self.assertEqual(status, 400, r)

    def test_ollama_tool_calls_as_objects(self):
        ob = {"model": "tiny", "messages": body()["messages"], "tools": TOOLS, "stream": False,
              "options": {"seed": 4, "num_predict": 200}, "tool_choice": "required"}
        status, r = self.srv.post("/api/chat", ob)
        self.assertEqual(status, 200, r)
        calls = r["message"]["tool_calls"]
        self.assertGreaterEqual(len(calls), 1)
        for c in calls:
            self.assertIsInstance(c["function"]["arguments"], dict)
            if jsonschema:
                jsonschema.validate(c["function"]["arguments"], SCHEMAS[c["function"]["name"]])
        ob["stream"] = True  # the calls in one line when the object is complete
        status, _, lines = self.srv.ndjson("/api/chat", ob)
        self.assertEqual(status, 200)
        self.assertTrue(lines[-1]["done"])
        streamed = [c for ln in lines for c in ln.get("message", {}).get("tool_calls", [])]
        self.assertEqual([(c["function"]["name"], c["function"]["arguments"]) for c in streamed],
                         [(c["function"]["name"], c["function"]["arguments"]) for c in calls])
        self.assertEqual("".join(ln["message"]["content"] for ln in lines), "")
        # auto (Ollama's only mode): calls, or the object's content as text
        ob.pop("tool_choice")
        ob["stream"] = False
        bare = [{"function": c["function"]} for c in calls]
        results = [{"role": "tool", "content": "22", "tool_name": c["function"]["name"]} for c in calls]
        ob["messages"] = ob["messages"] + [{"role": "assistant", "content": "", "tool_calls": bare}] + results
        status, r = self.srv.post("/api/chat", ob)
        self.assertEqual(status, 200, r)
        if r["message"].get("tool_calls"):
            self.assertEqual(r["message"]["content"], "")
        elif r["done_reason"] == "stop":
            self.assertFalse(r["message"]["content"].lstrip().startswith('{"content"'), r)


if __name__ == "__main__":
    unittest.main()
