"""The shape of the source tree: no import circle between modules (by
includes and by symbols, tests/include_graph.py) except the allowed pair
gcompile <-> gmatch, no source file over 1,000 lines, every source file
opening with the comment that names it and states its purpose, and the
README's Layout table naming every folder of src/."""
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("SMOE_BUILD", "build")
sys.path.insert(0, os.path.join(ROOT, "tests"))
import include_graph  # noqa: E402


class LayoutTest(unittest.TestCase):
    def test_no_circles_no_long_files(self):
        p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "include_graph.py"), ROOT,
                            os.path.join(ROOT, BUILD)], capture_output=True, text=True, timeout=300)
        self.assertIn("symbols:", p.stdout, "the symbol graph was not built: " + p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_the_graph_finds_circles(self):
        # the checker itself: a circle through headers and one through symbols
        inc = include_graph.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
        self.assertEqual(inc, [{"a", "b", "c"}])
        self.assertEqual(include_graph.circles({"a": {"b"}, "b": set()}), [])

    def test_every_file_states_its_purpose(self):
        for f in include_graph.sources(ROOT):
            name = os.path.basename(f)
            with open(f, encoding="utf-8") as fp:
                first = fp.readline()
            self.assertTrue(re.match(rf"/\* {re.escape(name)} - \S", first),
                            f"{os.path.relpath(f, ROOT)}: the first line should be '/* {name} - what it is for'")

    def test_readme_layout_names_every_folder(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fp:
            readme = fp.read()
        layout = readme[readme.index("## Layout"):]
        layout = layout[:layout.index("\n## ", 1)]
        for d in sorted(os.listdir(os.path.join(ROOT, "src"))):
            if os.path.isdir(os.path.join(ROOT, "src", d)):
                self.assertIn(f"`src/{d}/`", layout, f"README's Layout table does not name src/{d}/")


if __name__ == "__main__":
    unittest.main()
