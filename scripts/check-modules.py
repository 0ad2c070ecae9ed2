#!/usr/bin/env python3
"""Checks two rules of the source layout (issue 17), for CI:

1. No module imports another that imports it back. Modules are the
   top-level ones of `src/` and, inside `service/`, `graphql/`,
   `transport/` and `cli/`, their direct children; a parent contains its
   children, so a loop through a parent counts (a child and its parent
   naming each other alone do not: that is how Rust modules are built).
   Imports are every `crate::…` and `super::…` path, `use` trees
   included; test modules are left out.
2. No library module prints: `println!`, `print!`, `eprintln!`, `eprint!`,
   `stdout()` and `stderr()` appear only in the binary (`src/main.rs`,
   `src/cli/`). Logs go through `tracing`.

Usage: scripts/check-modules.py [src]   (exit 1 and a list when broken)
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "src"
SPLIT = {"service", "graphql", "transport", "cli"}
BINARY = ("main.rs", "cli" + os.sep)
PRINTS = re.compile(r"\b(e?println!|e?print!|stdout\(\)|stderr\(\))")


def module_of(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


FILES = [
    os.path.join(d, f) for d, _, fs in os.walk(ROOT) for f in fs if f.endswith(".rs")
]
MODULES = {module_of(f) for f in FILES}


def unit(parts):
    """The checked module a path lies in: its longest existing module prefix,
    cut to the granularity above."""
    for k in range(len(parts), 0, -1):
        if tuple(parts[:k]) in MODULES:
            found = parts[:k]
            keep = 2 if found[0] in SPLIT and len(found) > 1 else 1
            return "::".join(found[:keep])
    return None


def use_paths(text, i):
    """The paths of the `use` tree (or plain path) starting at `text[i]`."""
    out = []
    ident = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|\{|\*)")

    def parse(i, prefix):
        m = ident.match(text, i)
        if not m:
            return i
        tok, i = m.group(1), m.end()
        if tok == "*":
            out.append(prefix)
            return i
        if tok == "{":
            while True:
                i = parse(i, prefix)
                m = re.compile(r"\s*(,|\})").match(text, i)
                if not m:
                    return i
                i = m.end()
                if m.group(1) == "}":
                    return i
                close = re.compile(r"\s*\}").match(text, i)
                if close:
                    return close.end()
        path = prefix + [tok]
        if text.startswith("::", i):
            return parse(i + 2, path)
        out.append(path)
        return i

    parse(i, [])
    return out


def code(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"//[^\n]*", "", text)
    return text.split("#[cfg(test)]")[0]


edges = {}
prints = []
for path in FILES:
    here = module_of(path)
    me = unit(list(here))
    if me is None:
        continue
    text = code(path)
    for m in re.finditer(r"\b(crate|super)::", text):
        base = [] if m.group(1) == "crate" else list(here[:-1])
        for p in use_paths(text, m.end()):
            target = unit(base + p)
            if target and target != me:
                edges.setdefault(me, {}).setdefault(target, set()).add(
                    os.path.relpath(path, ROOT)
                )
    rel = os.path.relpath(path, ROOT)
    if not rel.startswith(BINARY):
        for n, line in enumerate(code(path).splitlines(), 1):
            if PRINTS.search(line):
                prints.append(f"{rel}:{n}: {line.strip()}")


# A module contains its children: whoever imports `transport` may reach
# what `transport::gateway` is part of. (A child naming its own parent, or
# the parent its child, is how Rust modules are built and is not reported
# on its own; a longer loop through the parent is.)
for m in MODULES:
    if len(m) == 2 and m[0] in SPLIT:
        edges.setdefault(m[0], {}).setdefault("::".join(m), set()).add("(contains)")


def parent_and_child(a, b):
    return a.startswith(b + "::") or b.startswith(a + "::")


def path_between(a, b, seen):
    if a == b:
        return [a]
    seen.add(a)
    for n in sorted(edges.get(a, {})):
        if n not in seen:
            rest = path_between(n, b, seen)
            if rest:
                return [a] + rest
    return None


cycles = []
reported = set()
for a in sorted(edges):
    for b in sorted(edges[a]):
        back = path_between(b, a, set())
        if back and not (len(back) == 2 and parent_and_child(a, b)):
            cycle = [a] + back
            key = frozenset(zip(cycle, cycle[1:]))
            if key not in reported:
                reported.add(key)
                via = ", ".join(sorted(edges[a][b]))
                cycles.append(" -> ".join(cycle) + f"   ({a} imports {b} in {via})")

for line in cycles:
    print("import cycle:", line)
for line in prints:
    print("library module prints:", line)
if cycles or prints:
    sys.exit(1)
print(f"{len(MODULES)} modules: no import cycles, no printing outside the binary")
