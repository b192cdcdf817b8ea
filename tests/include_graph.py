#!/usr/bin/env python3
"""The import graph of smoe's sources, module by module, and its circles.

    tests/include_graph.py [ROOT [BUILD]]           # the summary: circles, sizes
    tests/include_graph.py --edges [ROOT [BUILD]]   # every module and what it uses

A module is a source file and its header (src/engine/decode.c and .h are the
module engine/decode); a header with no .c of its own is a module by itself.
Two graphs, two kinds of circle:

  includes: A -> B when a file of A includes B's header, resolved as the
            compiler does (the including file's folder, then -Iinclude,
            -Isrc: what `cc -MM` finds, one level deep);
  symbols:  A -> B when A's object file needs a symbol that B's defines
            (`nm` on BUILD's objects, default ROOT/build): this sees
            through a header that declares the functions of many files
            (one server.h for eight .c files), which the include graph
            cannot.

A circle is a set of modules that reach each other (a strongly connected
component of more than one module).  Prints the circles of both graphs, then
the source files over LIMIT lines; exits 1 when there is a circle other than
the allowed ones or a file over the limit.
"""
import subprocess
import os
import re
import sys

ALLOWED_CIRCLES = [{"grammar/gcompile", "grammar/gmatch"}]
LIMIT = 1000
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources(root):
    out = []
    for base in ("src", "include"):
        for d, _, files in os.walk(os.path.join(root, base)):
            out += [os.path.join(d, f) for f in files if f.endswith((".c", ".h"))]
    return sorted(out)


def module_of(root, path):
    rel = os.path.relpath(path, root)
    stem = os.path.splitext(rel)[0]
    return stem[4:] if stem.startswith("src/") else stem


def resolve(root, path, name):
    for d in (os.path.dirname(path), os.path.join(root, "include"), os.path.join(root, "src")):
        p = os.path.normpath(os.path.join(d, name))
        if os.path.exists(p):
            return p
    return None


def graph(root):
    edges = {}
    for f in sources(root):
        m = module_of(root, f)
        edges.setdefault(m, set())
        with open(f, encoding="utf-8", errors="replace") as fp:
            text = fp.read()
        for name in INCLUDE.findall(text):
            p = resolve(root, f, name)
            if p is None:
                continue
            t = module_of(root, p)
            if t != m:
                edges[m].add(t)
    return edges


def symbol_graph(root, build):
    """Module -> modules whose symbols its object needs, from nm."""
    defined, needed = {}, {}
    for d, _, files in os.walk(os.path.join(build, "src")):
        for f in files:
            if not f.endswith(".o"):
                continue
            obj = os.path.join(d, f)
            m = os.path.splitext(os.path.relpath(obj, os.path.join(build, "src")))[0]
            if not os.path.exists(os.path.join(root, "src", m + ".c")):
                continue  # left behind by a source that is gone
            out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
            needed[m] = set()
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "U":
                    needed[m].add(parts[1])
                elif len(parts) == 3 and parts[1] in "TDRBV":
                    defined[parts[2]] = m
    return {m: {defined[s] for s in syms if s in defined and defined[s] != m} for m, syms in needed.items()}


def circles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def long_files(root):
    out = []
    for f in sources(root):
        with open(f, encoding="utf-8", errors="replace") as fp:
            n = sum(1 for _ in fp)
        if n > LIMIT:
            out.append((os.path.relpath(f, root), n))
    return out


def main(argv):
    show_edges = "--edges" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = os.path.abspath(args[0] if args else os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.path.abspath(args[1] if len(args) > 1 else os.path.join(root, "build"))
    bad = []
    graphs = [("includes", graph(root))]
    if os.path.isdir(os.path.join(build, "src")):
        graphs.append(("symbols", symbol_graph(root, build)))
    else:
        print(f"(no objects in {build}: the symbol graph is skipped; build first)")
    for kind, edges in graphs:
        if show_edges:
            for m in sorted(edges):
                print(f"{kind} {m}: {' '.join(sorted(edges[m]))}")
        found = circles(edges)
        bad += [c for c in found if c not in ALLOWED_CIRCLES]
        print(f"{kind}: {len(edges)} modules, {sum(len(e) for e in edges.values())} edges, {len(found)} circles")
        for c in sorted(found, key=lambda c: (-len(c), sorted(c))):
            tag = "allowed" if c in ALLOWED_CIRCLES else "CIRCLE"
            print(f"  {tag} ({len(c)} modules): {' '.join(sorted(c))}")
    big = long_files(root)
    for f, n in big:
        print(f"  OVER {LIMIT} LINES: {f} ({n})")
    return 1 if bad or big else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
