"""Mistral chat formats (`smoe tokenize --chat`): the golden prompts from
mistral-common reproduced exactly, format detection, where control tokens
may appear, the JSON inside v3 prompts, system prompt placement, the
prefix property the chat CLI relies on, and one clear line for each kind
of bad request."""
import json
import os
import subprocess
import unittest

from smoe_testlib import SHARED, SMOE, Workdir, smoe, synth

GOLDEN = os.path.join(SHARED, "golden", "mistral-chat")
V1 = os.path.join(SHARED, "tokenizers", "mistral-v1.model")
V3 = os.path.join(SHARED, "tokenizers", "mistral-v3.model")

# v3 control ids in the real vocabulary
BOS, EOS, INST, END_INST, TOOL_CALLS, TOOLS, END_TOOLS, RESULTS, END_RESULTS = 1, 2, 3, 4, 5, 6, 7, 8, 9


def run(*args):
    return subprocess.run([SMOE, *map(str, args)], capture_output=True, text=True, timeout=120)


def need_shared(test):
    for path in (V1, V3, GOLDEN):
        if not os.path.exists(path):
            test.skipTest(f"{path} is absent (shared test data lives in ../shared)")


class ChatTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = Workdir()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def setUp(self):
        need_shared(self)

    # helpers -------------------------------------------------------------

    def write(self, data, raw=False):
        ChatTest.n += 1
        path = self.dir.file(f"req{ChatTest.n}.json")
        with open(path, "wb") as f:
            f.write(data if raw else json.dumps(data).encode())
        return path

    def render(self, model, request, fmt=None):
        path = request if isinstance(request, str) else self.write(request)
        args = ["tokenize", "-m", model, "--chat", path] + (["--chat-format", fmt] if fmt else [])
        return [int(x) for x in smoe(*args).stdout.split()]

    def text(self, model, s):
        """Token ids of plain text (dummy prefix, no BOS), as one segment."""
        if s == "":
            return []
        return [int(x) for x in smoe("tokenize", "-m", model, "--no-bos", "--", s).stdout.split()]

    def fails(self, model, request, want, fmt="v3", raw=False):
        path = request if isinstance(request, str) else self.write(request, raw=raw)
        p = run("tokenize", "-m", model, "--chat", path, "--chat-format", fmt)
        self.assertEqual(p.returncode, 1, f"expected failure for {request!r}, got {p.stdout!r}")
        self.assertEqual(p.stdout, "")
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("smoe: "), p.stderr)
        self.assertIn(want, lines[0])
        self.assertNotIn("Sanitizer", p.stderr)
        return lines[0]

    @staticmethod
    def golden(folder, version):
        path = os.path.join(GOLDEN, folder, f"tokens_v{version}.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)["tokens"]

    # golden prompts ------------------------------------------------------

    def test_golden_v1(self):
        for folder in sorted(os.listdir(GOLDEN)):
            with self.subTest(folder=folder):
                sample = os.path.join(GOLDEN, folder, "sample.json")
                want = self.golden(folder, 1)
                if want is None:
                    # only the tool conversation lacks a v1 rendering (v1 has no tool
                    # tokens): smoe renders it in its own documented form (test_v1_tools)
                    self.assertEqual(folder, "get_weather_full")
                    ids = self.render(V1, sample, "v1")
                    self.assertEqual(ids[0], BOS)
                    self.assertNotIn(TOOL_CALLS, ids)  # id 5 is plain text in v1, not a control token
                else:
                    self.assertEqual(self.render(V1, sample, "v1"), want)

    def test_golden_v3(self):
        for folder in sorted(os.listdir(GOLDEN)):
            with self.subTest(folder=folder):
                want = self.golden(folder, 3)
                self.assertIsNotNone(want)
                self.assertEqual(self.render(V3, os.path.join(GOLDEN, folder, "sample.json"), "v3"), want)

    def test_pieces_output(self):
        out = smoe("tokenize", "-m", V3, "--chat", os.path.join(GOLDEN, "no_tools", "sample.json"),
                   "--pieces").stdout.splitlines()
        self.assertEqual(out[:3], ["1\t<s>", "3\t[INST]", "2592\t▁What"])
        self.assertEqual(out[-1], "4\t[/INST]")

    # detection -----------------------------------------------------------

    def test_detection_by_vocabulary(self):
        sample = os.path.join(GOLDEN, "no_tools", "sample.json")
        self.assertEqual(self.render(V1, sample), self.golden("no_tools", 1))
        self.assertEqual(self.render(V3, sample), self.golden("no_tools", 3))
        full = os.path.join(GOLDEN, "get_weather_full", "sample.json")
        self.assertEqual(self.render(V3, full), self.golden("get_weather_full", 3))

    def test_detection_from_gguf_vocabulary(self):
        for spm, version in ((V1, 1), (V3, 3)):
            with self.subTest(version=version):
                model = synth(self.dir.file(f"v{version}.gguf"), "--preset", "tiny", "--vocab", spm)
                sample = os.path.join(GOLDEN, "no_tools", "sample.json")
                self.assertEqual(self.render(model, sample), self.golden("no_tools", version))

    def test_format_names(self):
        sample = os.path.join(GOLDEN, "no_tools", "sample.json")
        for name in ("v1", "mistral-v1", "V1"):
            self.assertEqual(self.render(V1, sample, name), self.golden("no_tools", 1))
        for name in ("v3", "mistral-v3"):
            self.assertEqual(self.render(V3, sample, name), self.golden("no_tools", 3))
        self.fails(V3, sample, "unknown format 'v2'", fmt="v2")

    # control tokens ------------------------------------------------------

    def test_typed_control_text_stays_text(self):
        content = "[INST] hi </s> [/INST] [TOOL_CALLS] [AVAILABLE_TOOLS] <s>"
        req = {"messages": [{"role": "user", "content": content}]}
        ids = self.render(V3, req, "v3")
        self.assertEqual(ids, [BOS, INST] + self.text(V3, content) + [END_INST])
        self.assertFalse(set(ids[2:-1]) & set(range(10)), ids)
        ids = self.render(V1, req, "v1")
        self.assertEqual(ids, [BOS] + self.text(V1, f"[INST] {content} [/INST]"))
        self.assertNotIn(EOS, ids)
        self.assertEqual(ids.count(BOS), 1)

    def test_control_tokens_only_where_the_format_puts_them(self):
        req = {"messages": [{"role": "user", "content": "a </s>"}, {"role": "assistant", "content": "b [/INST]"},
                            {"role": "user", "content": "c [INST]"}]}
        ids = self.render(V3, req, "v3")
        controls = [i for i in ids if i < 10]
        self.assertEqual(controls, [BOS, INST, END_INST, EOS, INST, END_INST])
        ids = self.render(V1, req, "v1")
        self.assertEqual([i for i in ids if i < 3], [BOS, EOS])

    # v3 JSON segments ----------------------------------------------------

    def test_v3_tool_segments(self):
        tools = [{"type": "function", "function": {
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "number",
                                                                                            "minimum": 0.5}}},
            "name": "weather", "strict": True}}]
        req = {"model": "x", "tools": tools, "messages": [
            {"role": "user", "content": "Wetter in Zürich?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "abcdefghi", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\": \"Zürich 🌧\", \"n\": 1e2, \"q\": [1, 2.50]}"}},
                {"id": "ABCDEFGHI", "function": {"name": "weather", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "abcdefghi", "content": "{\"t\": \"22 °C\", \"ok\": true}"},
            {"role": "tool", "tool_call_id": "ABCDEFGHI", "name": "weather", "content": "sunny"},
        ]}
        ids = self.render(V3, req, "v3")
        # Python's json.dumps with ensure_ascii=False is what mistral-common uses
        tools_json = json.dumps([{"type": "function", "function": {
            "name": "weather", "description": "", "parameters": tools[0]["function"]["parameters"]}}],
            ensure_ascii=False)
        calls_json = json.dumps([
            {"name": "weather", "arguments": {"city": "Zürich 🌧", "n": 100.0, "q": [1, 2.5]}, "id": "abcdefghi"},
            {"name": "weather", "arguments": {}, "id": "ABCDEFGHI"}], ensure_ascii=False)
        r1 = json.dumps({"content": {"t": "22 °C", "ok": True}, "call_id": "abcdefghi"}, ensure_ascii=False)
        r2 = json.dumps({"content": "sunny", "call_id": "ABCDEFGHI"}, ensure_ascii=False)
        want = ([BOS, TOOLS] + self.text(V3, tools_json) + [END_TOOLS, INST] + self.text(V3, "Wetter in Zürich?") +
                [END_INST, TOOL_CALLS] + self.text(V3, calls_json) + [EOS, RESULTS] + self.text(V3, r1) +
                [END_RESULTS, RESULTS] + self.text(V3, r2) + [END_RESULTS])
        self.assertEqual(ids, want)

    def test_v3_tool_content_parsing(self):
        for content, value in (("22", 22), ("  [1, 2] ", [1, 2]), ("22 degrees", "22 degrees"), ("", {}),
                               ("null", None), ("\"quoted\"", "quoted"), ("0.1", 0.1)):
            with self.subTest(content=content):
                req = {"messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "tool_calls": [{"id": "a23456789", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "a23456789", "content": content}]}
                ids = self.render(V3, req, "v3")
                start = ids.index(RESULTS)
                self.assertEqual(ids[start + 1:-1],
                                 self.text(V3, json.dumps({"content": value, "call_id": "a23456789"})))

    def test_v3_call_without_id(self):
        req = {"messages": [{"role": "user", "content": "q"},
                            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
                            {"role": "tool", "tool_call_id": "a23456789", "content": "1"}]}
        ids = self.render(V3, req, "v3")
        a, b = ids.index(TOOL_CALLS), ids.index(EOS)
        self.assertEqual(ids[a + 1:b], self.text(V3, '[{"name": "f", "arguments": {"x": 1}}]'))

    # normalisation and placement ------------------------------------------

    def test_system_prompt_placement(self):
        msgs = [{"role": "system", "content": "S1"}, {"role": "user", "content": "A"},
                {"role": "system", "content": [{"type": "text", "text": "S2"}]}, {"role": "system", "content": ""},
                {"role": "assistant", "content": "B  "}, {"role": "user", "content": "C"}]
        req = {"messages": msgs}
        self.assertEqual(self.render(V1, req, "v1"),
                         [BOS] + self.text(V1, "[INST] S1\n\nS2\n\nA [/INST]") + self.text(V1, "B  ") + [EOS] +
                         self.text(V1, "[INST] C [/INST]"))
        self.assertEqual(self.render(V3, req, "v3"),
                         [BOS, INST] + self.text(V3, "A") + [END_INST] + self.text(V3, "B") + [EOS, INST] +
                         self.text(V3, "S1\n\nS2\n\nC") + [END_INST])

    def test_parts_and_consecutive_messages_are_joined(self):
        joined = self.render(V3, {"messages": [{"role": "user", "content": "a\n\nb\n\nc"}]}, "v3")
        parts = self.render(V3, {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": ""}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "c"}]}, "v3")
        self.assertEqual(parts, joined)

    def test_conversation_starting_with_assistant(self):
        req = {"messages": [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "x"}]}
        self.assertEqual(self.render(V3, req, "v3"),
                         [BOS, INST, END_INST] + self.text(V3, "Hello") + [EOS, INST] + self.text(V3, "x") + [END_INST])

    # prefix property ---------------------------------------------------------

    def test_prefix_property(self):
        answer = "The answer is 42."
        cases = [(V1, "v1", False, True), (V1, "v1", True, True), (V3, "v3", False, True), (V3, "v3", True, False)]
        for model, fmt, system, holds in cases:
            with self.subTest(fmt=fmt, system=system):
                msgs = ([{"role": "system", "content": "Be brief."}] if system else []) + [
                    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "What is 6 x 7?"}]
                r1 = self.render(model, {"messages": msgs}, fmt)
                r2 = self.render(model, {"messages": msgs + [{"role": "assistant", "content": answer},
                                                             {"role": "user", "content": "Thanks"}]}, fmt)
                extended = r1 + self.text(model, answer) + [EOS]
                self.assertEqual(r2[:len(extended)] == extended, holds)
                if not holds:  # v3 + system: they agree up to the last user turn's [INST] only
                    last_inst = len(r1) - 1 - r1[::-1].index(INST)
                    self.assertEqual(r2[:last_inst + 1], r1[:last_inst + 1])
                    self.assertNotEqual(r2[last_inst + 1], r1[last_inst + 1])

    # bad requests ------------------------------------------------------------

    def test_bad_requests(self):
        u = {"role": "user", "content": "hi"}
        call = {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        cases = [
            ([1, 2], "the request must be a JSON object"),
            (b'"text"', "the request must be a JSON object"),
            ({}, "no 'messages' array"),
            ({"messages": {}}, "'messages' must be an array"),
            ({"messages": []}, "'messages' is empty"),
            ({"messages": [5]}, "messages[0]: must be an object"),
            ({"messages": [{"content": "x"}]}, "messages[0]: 'role' is missing"),
            ({"messages": [{"role": "robot", "content": "x"}]},
             "messages[0]: role 'robot' is not one of system, user, assistant, tool"),
            ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content: must be a string or an array"),
            ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content: must be a string"),
            ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
             "part type 'image_url' is not supported"),
            ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "'text' must be a string"),
            ({"messages": [{"role": "user"}]}, "messages[0]: content is missing"),
            ({"messages": [{"role": "system", "content": None}, u]}, "messages[0]: content is missing"),
            ({"messages": [u, {"role": "assistant", "content": "a"}]}, "must end with a user or tool message"),
            ({"messages": [{"role": "system", "content": "s"}]}, "must end with a user or tool message"),
            ({"messages": [u, {"role": "assistant", "content": ""}, u]}, "needs content or tool_calls"),
            ({"messages": [u, {"role": "assistant", "content": "x", "tool_calls": [call]},
                           {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]}, "not both"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [
                {"id": "abcdefghi", "function": {"name": "f", "arguments": "{location: Paris}"}}]},
                           {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]},
             "messages[1].tool_calls[0].function.arguments: not valid JSON"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [
                {"id": "abcdefghi", "function": {"name": "get weather", "arguments": "{}"}}]},
                           {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]},
             "function.name: 'get weather' must be 1 to 64"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "content": "1"}]},
             "messages[2]: tool_call_id is missing"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [call]}, u]}, "have no tool result"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [call]}]}, "must end with a user or tool message"),
            ({"messages": [u, {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"}]},
             "messages[1]: role 'tool' cannot follow role 'user'"),
            ({"messages": [u, {"role": "assistant", "content": "a"}, {"role": "system", "content": "s"}, u]},
             "messages[2]: role 'system' cannot follow role 'assistant'"),
            ({"messages": [u, {"role": "assistant", "tool_calls": [call]},
                           {"role": "tool", "tool_call_id": "abcdefghi", "content": "1"},
                           {"role": "tool", "tool_call_id": "abcdefghi", "content": "2"}]},
             "messages[3]: a tool result with no tool call"),
            ({"messages": [u], "tools": {}}, "tools: must be an array"),
            ({"messages": [u], "tools": [{"type": "function", "function": {"description": "x"}}]},
             "tools[0].function.name: missing"),
        ]
        for request, want in cases:
            with self.subTest(request=request):
                self.fails(V3, request, want, raw=isinstance(request, bytes))

    def test_bad_requests_v1(self):
        u = {"role": "user", "content": "hi"}
        f = [{"type": "function", "function": {"name": "f"}}]
        self.fails(V1, {"messages": [u], "tools": f, "tool_choice": {"type": "function", "function": {"name": "g"}}},
                   "g", fmt="v1")
        self.fails(V1, {"messages": [u], "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "string"}}}]}, "tools", fmt="v1")
        self.fails(V1, {"messages": [u, {"role": "assistant", "tool_calls": [
            {"function": {"name": "f", "arguments": "{"}}]}, {"role": "tool", "content": "1"}]},
            "messages[1].tool_calls[0].function.arguments: not valid JSON", fmt="v1")
        # an empty tools list is fine in v1
        self.assertEqual(self.render(V1, {"messages": [u], "tools": []}, "v1"), [BOS] + self.text(V1, "[INST] hi [/INST]"))

    # v1 with tools (smoe's own form; chat.h) -----------------------------------

    @staticmethod
    def v1_tool_prompt(tools, choice="auto", parallel=True):
        """smoe_toolcall_object_prompt's text (toolcall.c)."""
        s = ("You can call these functions (JSON Schema of their arguments included):\n" +
             json.dumps(tools, separators=(",", ":"), ensure_ascii=False) + "\n")
        if isinstance(choice, dict):
            s += f"Call the function {choice['function']['name']}.\n"
        s += ('Answer with one JSON object and nothing else: {"tool_calls": [{"name": <function name>, '
              '"arguments": {<arguments>}}]} to call ' + ("one or more functions" if parallel else "one function"))
        if choice == "auto":
            s += ', or {"content": <your answer as text>} to answer without calling one'
        return s + "."

    V1_TOOLS = [{"type": "function", "function": {"name": "add", "description": "Adds é", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}]

    def v1_conversation(self, **kw):
        return dict({"tools": self.V1_TOOLS, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 3"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "abc123DEF", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}},
                {"type": "function", "function": {"name": "add", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "abc123DEF", "content": "5"},
            {"role": "tool", "content": "not json"},
            {"role": "assistant", "content": "It is 5."}, {"role": "user", "content": "Thanks"}]}, **kw)

    def test_v1_tools(self):
        """The tools instruction joins the system prompt on the FIRST user turn;
        calls are {"tool_calls": [...]} + </s>, consecutive results one user turn
        {"tool_results": [...]}, answers in words {"content": ...} + </s>."""
        t = lambda s: self.text(V1, s)
        calls = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "abc123DEF"},
                                           {"name": "add", "arguments": {"a": 1}}]})
        results = json.dumps({"tool_results": [{"content": 5, "call_id": "abc123DEF"}, {"content": "not json"}]})
        for choice, parallel in (("auto", True), ("required", False),
                                 ({"type": "function", "function": {"name": "add"}}, True)):
            with self.subTest(choice=choice):
                req = self.v1_conversation(tool_choice=choice, parallel_tool_calls=parallel)
                first = "[INST] Be brief.\n\n" + self.v1_tool_prompt(self.V1_TOOLS, choice, parallel) + "\n\nAdd 2 and 3 [/INST]"
                want = ([BOS] + t(first) + t(calls) + [EOS] + t("[INST] " + results + " [/INST]") +
                        t(json.dumps({"content": "It is 5."})) + [EOS] + t("[INST] Thanks [/INST]"))
                self.assertEqual(self.render(V1, req, "v1"), want)

    def test_v1_tools_none(self):
        """tool_choice none: no instruction, answers in words stay plain text;
        the history's calls and results keep their form."""
        t = lambda s: self.text(V1, s)
        calls = json.dumps({"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "abc123DEF"},
                                           {"name": "add", "arguments": {"a": 1}}]})
        results = json.dumps({"tool_results": [{"content": 5, "call_id": "abc123DEF"}, {"content": "not json"}]})
        want = ([BOS] + t("[INST] Be brief.\n\nAdd 2 and 3 [/INST]") + t(calls) + [EOS] +
                t("[INST] " + results + " [/INST]") + t("It is 5.") + [EOS] + t("[INST] Thanks [/INST]"))
        self.assertEqual(self.render(V1, self.v1_conversation(tool_choice="none"), "v1"), want)
        self.assertEqual(self.render(V1, dict(self.v1_conversation(), tools=[]), "v1"), want)

    def test_v1_tools_prefix(self):
        """With tools the v1 prompt still extends turn by turn: R1 + the answer as
        the model writes it ({"content": ...}) + </s> starts R2."""
        req = self.v1_conversation()
        msgs = req["messages"][:5]
        r1 = self.render(V1, dict(req, messages=msgs), "v1")
        r2 = self.render(V1, dict(req, messages=msgs + [{"role": "assistant", "content": "Five."},
                                                         {"role": "user", "content": "ok"}]), "v1")
        extended = r1 + self.text(V1, '{"content": "Five."}') + [EOS]
        self.assertEqual(r2[:len(extended)], extended)

    def test_bad_files(self):
        self.fails(V3, self.write(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', raw=True),
                   "unable to decode byte 0xe9")
        self.fails(V3, self.write(b'{"messages": [', raw=True), "not valid JSON")
        self.fails(V3, self.dir.file("missing.json"), "missing.json")

    def test_bad_arguments(self):
        sample = os.path.join(GOLDEN, "no_tools", "sample.json")
        for args, want in ((["--chat", sample, "hello"], "--chat takes no TEXT"),
                           (["--chat", sample, "--no-bos"], "--no-bos does not apply to --chat"),
                           (["--chat-format", "v3", "hello"], "--chat-format goes with --chat"),
                           (["--chat"], "--chat needs a request file")):
            with self.subTest(args=args):
                p = run("tokenize", "-m", V3, *args)
                self.assertEqual(p.returncode, 1)
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
                self.assertIn(want, p.stderr)


if __name__ == "__main__":
    unittest.main()
