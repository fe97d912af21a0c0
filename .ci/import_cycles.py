#!/usr/bin/env python3
"""Report import circles between the source files of every Rust crate in the repository.

A file depends on another when it names an item defined there: through a `use` declaration
(`use crate::…`, `use super::…`, `use self::…`, a child module, or a name another `use` brought
in) or through a qualified path in code (`crate::math::ntt::forward(…)`, `super::Foo`). Paths are
resolved through re-exports: `crate::Error` names the file that defines `Error`, not `lib.rs`
which re-exports it, so a facade `mod.rs` is no circle by itself. A `pub use child::X` in a
parent is an import of `child` like any other. `mod child;` declarations are structure, not
imports. Comments and string literals are ignored; `#[path]` on `mod` is honoured.

Each crate root (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, and every file directly under
`tests/`, `benches/`, `examples/`, `fuzz_targets/`) is checked as its own module tree. Every
strongly connected group of two or more files is printed with the imports that close it. Exit
status 1 when there is one.

Circles listed in `.ci/import_cycles_known.txt` (one per line: its files, space-separated,
relative to the repository) are reported as known and do not fail the run; a circle that gains
or loses a file is a different circle. A listed circle that no longer exists is reported so its
line can be deleted.

Usage: .ci/import_cycles.py [REPO_ROOT]      (Python 3 standard library only)
       .ci/import_cycles.py --self-test      (checks the checker on small made-up crates)
"""

import os
import re
import sys

ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}
ROOT_DIRS = ("tests", "benches", "examples", "fuzz_targets")


RAW = re.compile(r'(?:br|r)(#*)"')
CHAR = re.compile(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'")


def strip(text):
    """Blank comments, string and char literals (keeping offsets and newlines)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and RAW.match(text, i) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            m = RAW.match(text, i)
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            m = CHAR.match(text, i)
            if m:
                blank(i, m.end())
                i = m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{}();,*#\[\]=<>!]|\S")


class Module:
    def __init__(self, path, file, parent):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.parent = parent
        self.children = {}  # name -> Module
        self.items = set()
        self.aliases = {}  # name -> (anchor Module, segments)
        self.globs = []  # (anchor Module, segments)
        self.refs = []  # (line, anchor Module, segments, is_use)


def parse_use_tree(toks, i):
    """Parses a use tree at toks[i]; returns (list of (segments, alias or None, is_glob), next i)."""
    results = []

    def tree(i, prefix):
        segs = list(prefix)
        if toks[i][1] == "::":
            i += 1
        while True:
            t = toks[i][1]
            if t == "{":
                i += 1
                while toks[i][1] != "}":
                    i = tree(i, segs)
                    if toks[i][1] == ",":
                        i += 1
                return i + 1
            if t == "*":
                results.append((segs, None, True))
                return i + 1
            segs.append(t)
            i += 1
            if toks[i][1] == "::":
                i += 1
                continue
            alias = None
            if toks[i][1] == "as":
                alias = toks[i + 1][1]
                i += 2
            if segs[-1] == "self":
                segs = segs[:-1]
                alias = alias or (segs[-1] if segs else None)
            results.append((segs, alias or segs[-1], False))
            return i

    i = tree(i, [])
    return results, i


class Crate:
    def __init__(self, root_file):
        self.root_file = root_file
        self.files = {}  # file -> text
        self.root = self.load(root_file, (), None, is_dir_owner=True)

    def load(self, file, path, parent, is_dir_owner):
        with open(file, encoding="utf-8") as f:
            raw = f.read()
        self.files[file] = raw
        mod = Module(path, file, parent)
        text = strip(raw)
        line_of = [0]
        for k, ch in enumerate(text):
            if ch == "\n":
                line_of.append(k + 1)
        toks = [(m.start(), m.group()) for m in TOKEN.finditer(text)]
        toks.append((len(text), ";"))  # sentinel

        def line(pos):
            lo, hi = 0, len(line_of)
            while lo + 1 < hi:
                mid = (lo + hi) // 2
                if line_of[mid] <= pos:
                    lo = mid
                else:
                    hi = mid
            return lo + 1

        if is_dir_owner:
            base = os.path.dirname(file)
        else:
            base = os.path.join(os.path.dirname(file), os.path.splitext(os.path.basename(file))[0])
        paths = {}  # `mod name` token index -> #[path] value
        for m in re.finditer(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)', raw):
            paths[m.group(2)] = m.group(1)

        stack = [(mod, -1)]  # (module, brace depth at which it was opened)
        depth = 0
        i = 0
        while i < len(toks) - 1:
            pos, t = toks[i]
            cur = stack[-1][0]
            prev = toks[i - 1][1] if i else ""
            if t == "{":
                depth += 1
            elif t == "}":
                depth -= 1
                if stack[-1][1] == depth and len(stack) > 1:
                    stack.pop()
            elif t == "mod" and prev != "::" and re.match(r"\w+$", toks[i + 1][1]):
                name, nxt = toks[i + 1][1], toks[i + 2][1]
                if nxt == "{":
                    child = Module(cur.path + (name,), file, cur)
                    cur.children[name] = child
                    stack.append((child, depth))
                    depth += 1
                    i += 3
                    continue
                if nxt == ";":
                    if cur is mod:
                        if name in paths:
                            cand = [os.path.join(os.path.dirname(file), paths[name])]
                        else:
                            cand = [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
                        found = [c for c in cand if os.path.exists(c)]
                        if found:
                            f = os.path.normpath(found[0])
                            owner = f.endswith("mod.rs") or name in paths
                            cur.children[name] = self.load(f, cur.path + (name,), cur, owner)
                    i += 3
                    continue
            elif t == "use" and prev not in ("::", "."):
                trees, j = parse_use_tree(toks, i + 1)
                for segs, alias, glob in trees:
                    if not segs:
                        continue
                    if glob:
                        cur.globs.append((cur, segs))
                    else:
                        cur.aliases[alias] = (cur, segs)
                    cur.refs.append((line(pos), cur, segs, True))
                i = j
                continue
            elif t in ITEM_KEYWORDS and re.match(r"[A-Za-z_]\w*$", toks[i + 1][1]):
                cur.items.add(toks[i + 1][1])
            elif t == "macro_rules" and toks[i + 1][1] == "!":
                cur.items.add(toks[i + 2][1])
            elif re.match(r"[A-Za-z_]\w*$", t) and toks[i + 1][1] == "::" and prev not in ("::", "$"):
                segs, j = [t], i + 1
                while toks[j][1] == "::" and re.match(r"[A-Za-z_]\w*$", toks[j + 1][1]):
                    segs.append(toks[j + 1][1])
                    j += 2
                if len(segs) > 1:
                    cur.refs.append((line(pos), cur, segs, False))
                i = j
                continue
            i += 1
        return mod

    @staticmethod
    def local(anchor, segs):
        """Whether a glob import's path starts inside this crate (not another crate's glob)."""
        return segs[0] in ("crate", "self", "super") or segs[0] in anchor.children

    def start(self, anchor, segs, hops):
        """The module a path's first segment names, and the segments left; None if external."""
        first = segs[0]
        if first == "crate":
            return self.root, segs[1:]
        m, k = anchor, 0
        if first == "self":
            return anchor, segs[1:]
        while k < len(segs) and segs[k] == "super":
            m = m.parent
            if m is None:
                return None
            k += 1
        if k:
            return m, segs[k:]
        if first in anchor.children or first in anchor.items or first in anchor.aliases:
            return anchor, segs
        for g_anchor, g_segs in anchor.globs:
            if not self.local(g_anchor, g_segs):
                continue
            r = self.resolve(g_anchor, g_segs + [first], hops + 1, probe=True)
            if r is not None:
                return anchor, segs
        return None

    def resolve(self, anchor, segs, hops=0, probe=False):
        """The file defining what the path names (a module: its file); None if not local."""
        if hops > 16 or not segs:
            return None
        s = self.start(anchor, segs, hops)
        if s is None:
            return None
        m, rest = s
        for k, name in enumerate(rest):
            if name in m.children:
                m = m.children[name]
                continue
            if name in m.items:
                return m.file
            if name in m.aliases:
                a_anchor, a_segs = m.aliases[name]
                r = self.resolve(a_anchor, a_segs + rest[k + 1:], hops + 1, probe)
                return r if r is not None or probe else m.file
            for g_anchor, g_segs in m.globs:
                if not self.local(g_anchor, g_segs):
                    continue
                r = self.resolve(g_anchor, g_segs + rest[k:], hops + 1, probe=True)
                if r is not None:
                    return r
            return None if probe else m.file
        return m.file

    def modules(self):
        todo = [self.root]
        while todo:
            m = todo.pop()
            yield m
            todo.extend(m.children.values())

    def edges(self):
        """{(from file, to file): [(line, path text)]}."""
        out = {}
        for m in self.modules():
            for line, anchor, segs, is_use in m.refs:
                if not is_use and segs[0] not in ("crate", "super", "self") and segs[0] not in (
                    list(anchor.children) + list(anchor.aliases)
                ):
                    continue
                target = self.resolve(anchor, list(segs))
                if target is not None and target != m.file:
                    out.setdefault((m.file, target), []).append((line, "::".join(segs)))
        return out


def sccs(nodes, adj):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        work = [(v, iter(sorted(adj.get(v, ()))))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def crate_roots(repo):
    roots = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "target")
        if "Cargo.toml" not in filenames:
            continue
        src = os.path.join(dirpath, "src")
        for name in ("lib.rs", "main.rs"):
            if os.path.isfile(os.path.join(src, name)):
                roots.append(os.path.join(src, name))
        for d in [os.path.join(src, "bin")] + [os.path.join(dirpath, r) for r in ROOT_DIRS]:
            if os.path.isdir(d):
                roots += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".rs"))
    return roots


def known_circles(repo):
    path = os.path.join(repo, ".ci", "import_cycles_known.txt")
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        lines = [l.split("#", 1)[0].split() for l in f]
    return {tuple(sorted(l)) for l in lines if l}


def main():
    repo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    known = known_circles(repo)
    found, files_seen, reported, seen_known = 0, set(), set(), set()
    for root in crate_roots(repo):
        crate = Crate(root)
        files_seen.update(crate.files)
        edges = crate.edges()
        adj = {}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
        for comp in sccs(set(crate.files), adj):
            if len(comp) < 2 or tuple(comp) in reported:
                continue
            reported.add(tuple(comp))
            rel = lambda f: os.path.relpath(f, repo)
            key = tuple(sorted(rel(f) for f in comp))
            if key in known:
                seen_known.add(key)
                print(f"known import circle (listed in .ci/import_cycles_known.txt): {' '.join(key)}")
                continue
            found += 1
            print(f"import circle among {len(comp)} files (crate root {rel(root)}):")
            for a in comp:
                for b in comp:
                    if (a, b) in edges:
                        line, path = edges[(a, b)][0]
                        more = len(edges[(a, b)]) - 1
                        extra = f" (+{more} more)" if more else ""
                        print(f"  {rel(a)}:{line} -> {rel(b)}   via {path}{extra}")
    for key in sorted(known - seen_known):
        print(f"listed circle no longer exists, delete its line: {' '.join(key)}")
    print(
        f"{len(files_seen)} files checked, {found} new import circle(s), {len(seen_known)} known",
        file=sys.stderr,
    )
    return 1 if found else 0


def self_test():
    """Made-up crates: what must be found as a circle and what must not."""
    import tempfile

    cases = {
        # a.rs and b.rs name each other's items through `use crate::…` and a code path.
        "direct": ({"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::b::B;\npub struct A;\n",
                    "b.rs": "pub struct B;\nfn f() { let _ = crate::a::A; }\n"}, [["a.rs", "b.rs"]]),
        # A facade mod.rs that re-exports a child which imports a helper defined in mod.rs.
        "facade": ({"lib.rs": "mod m;\n", "m/mod.rs": "mod c;\npub use c::C;\npub(crate) fn h() {}\n",
                    "m/c.rs": "use super::h;\npub struct C;\n"}, [["m/c.rs", "m/mod.rs"]]),
        # Re-exports are followed: `crate::E` is e.rs, not lib.rs; comments and strings are not code.
        "clean": ({"lib.rs": "mod e;\nmod x;\npub use e::E;\n",
                   "e.rs": "// use crate::x::X;\npub struct E;\nconst S: &str = \"crate::x::X\";\n",
                   "x.rs": "use crate::E;\npub struct X;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"}, []),
    }
    ok = True
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(d, "src", rel)), exist_ok=True)
                with open(os.path.join(d, "src", rel), "w", encoding="utf-8") as f:
                    f.write(text)
            crate = Crate(os.path.join(d, "src", "lib.rs"))
            adj = {}
            for a, b in crate.edges():
                adj.setdefault(a, set()).add(b)
            got = [sorted(os.path.relpath(f, os.path.join(d, "src")) for f in c)
                   for c in sccs(set(crate.files), adj) if len(c) > 1]
            if sorted(got) != sorted(want):
                print(f"self-test {name}: found {got}, expected {want}")
                ok = False
    print("self-test passed" if ok else "self-test FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(self_test() if sys.argv[1:] == ["--self-test"] else main())
