"""Regenerate the accepted-key trees in this folder from Go sources (a maintenance tool, not a test).

livekit-server parses livekit.yaml with yaml.v3 ``KnownFields(true)``: an unknown key stops the server.
This tool walks the Go config structs and records every key yaml.v3 would accept, following the same
rules: the ``yaml:"name"`` tag, else the lower-cased field name; ``yaml:"-"`` skipped; embedded structs
only merged with ``,inline``; types with an ``UnmarshalYAML`` method are opaque scalars.

Usage (repositories are local git clones; each module is read at the given commit)::

    python extract_go_yaml_keys.py ROOT_PKG.ROOT_TYPE \
        --module github.com/livekit/livekit-server=/src/livekit@<commit> \
        --module github.com/livekit/protocol=/src/protocol@<commit> ... > out.yaml

Output tree: a mapping for a struct; ``scalar`` (a value, or a list of values), ``map`` (free keys,
scalar values), ``any`` (not checked: types outside the given modules, protobuf messages, custom
unmarshalers); ``{"[]": tree}`` for a list of structs and ``{"{}": tree}`` for a map of structs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field

import yaml

BASIC = {
    "bool", "string", "byte", "rune", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16",
    "uint32", "uint64", "uintptr", "float32", "float64", "complex64", "complex128",
}  # fmt: skip
# Standard-library types yaml.v3 decodes from a scalar.
STDLIB_SCALARS = {"time.Duration", "time.Time", "netip.Addr", "netip.Prefix", "net.IP"}


@dataclass
class Package:
    structs: dict[str, str] = field(default_factory=dict)  # name -> struct body
    aliases: dict[str, str] = field(default_factory=dict)  # name -> underlying type expression
    custom: set[str] = field(default_factory=set)  # types with UnmarshalYAML
    imports: dict[str, str] = field(default_factory=dict)  # alias -> import path (union over files)


class Extractor:
    def __init__(self, modules: dict[str, tuple[str, str]], opaque: list[str]) -> None:
        self.modules = modules
        self.opaque = opaque
        self.packages: dict[str, Package | None] = {}

    def _locate(self, import_path: str) -> tuple[str, str, str] | None:
        best = max((m for m in self.modules if import_path == m or import_path.startswith(m + "/")), key=len,
                   default=None)  # fmt: skip
        if best is None:
            return None
        repo, commit = self.modules[best]
        return repo, commit, import_path[len(best) :].lstrip("/")

    def package(self, import_path: str) -> Package | None:
        if import_path in self.packages:
            return self.packages[import_path]
        loc = self._locate(import_path)
        pkg = None
        if loc is not None and not any(import_path.startswith(o) for o in self.opaque):
            repo, commit, sub = loc
            listing = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", f"{commit}:{sub}" if sub
                                      else commit], capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
            pkg = Package()
            for name in listing:
                if name.endswith(".go") and not name.endswith("_test.go"):
                    path = f"{sub}/{name}" if sub else name
                    src = subprocess.run(["git", "-C", repo, "show", f"{commit}:{path}"], capture_output=True,
                                         text=True, check=True).stdout  # fmt: skip
                    _parse_file(src, pkg)
        self.packages[import_path] = pkg
        return pkg

    def tree(self, import_path: str, type_expr: str, seen: tuple[str, ...] = ()) -> object:
        t = type_expr.strip()
        while t.startswith("*"):
            t = t[1:].strip()
        if t.startswith("[]") or re.match(r"^\[\d+\]", t):
            inner = self.tree(import_path, t[t.index("]") + 1 :], seen)
            return {"[]": inner} if isinstance(inner, dict) else inner
        if t.startswith("map["):
            depth, i = 0, 3
            for i in range(3, len(t)):
                depth += t[i] == "["
                depth -= t[i] == "]"
                if depth == 0:
                    break
            inner = self.tree(import_path, t[i + 1 :], seen)
            return {"{}": inner} if isinstance(inner, dict) else ("map" if inner == "scalar" else "any")
        if t.startswith("struct"):
            return self.struct_tree(import_path, t[t.index("{") + 1 : t.rindex("}")], seen)
        if t in BASIC:
            return "scalar"
        if t in ("any", "interface{}") or t.startswith(("func", "chan", "interface")):
            return "any"
        if "." in t:
            alias, name = t.split(".", 1)
            pkg = self.package(import_path)
            target = pkg.imports.get(alias) if pkg else None
            if target is None:
                return "scalar" if t in STDLIB_SCALARS else "any"
            if f"{target.rsplit('/', 1)[-1]}.{name}" in STDLIB_SCALARS or target in ("time", "net/netip"):
                return "scalar"
            return self.named(target, name, seen)
        return self.named(import_path, t, seen)

    def named(self, import_path: str, name: str, seen: tuple[str, ...]) -> object:
        key = f"{import_path}.{name}"
        pkg = self.package(import_path)
        if pkg is None or key in seen:
            return "any"
        if name in pkg.custom:
            return "scalar"
        if name in pkg.structs:
            return self.struct_tree(import_path, pkg.structs[name], seen + (key,))
        if name in pkg.aliases:
            return self.tree(import_path, pkg.aliases[name], seen + (key,))
        return "any"

    def struct_tree(self, import_path: str, body: str, seen: tuple[str, ...]) -> dict:
        out: dict[str, object] = {}
        for names, type_expr, tag in _fields(body):
            opts = re.search(r'yaml:"([^"]*)"', tag or "")
            name_opt, *flags = (opts.group(1) if opts else "").split(",")
            if name_opt == "-":
                continue
            if names is None:  # embedded
                if "inline" in flags:
                    sub = self.tree(import_path, type_expr, seen)
                    if isinstance(sub, dict):
                        out.update(sub)
                    continue
                names = [type_expr.lstrip("*").split(".")[-1]]
            for fname in names:
                if not fname[0].isupper():
                    continue
                key = name_opt or fname.lower()
                out[key] = self.tree(import_path, type_expr, seen)
        return dict(sorted(out.items()))


def _strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.DOTALL)
    return re.sub(r"(?m)//.*$", "", re.sub(r"`[^`]*`", lambda m: m.group(0).replace("//", "\0\0"), src))


def _block(src: str, start: int) -> int:
    """Index just past the brace that closes the one opened at src[start]."""
    depth = 0
    for i in range(start, len(src)):
        if src[i] == "{":
            depth += 1
        elif src[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced braces")


def _parse_file(src: str, pkg: Package) -> None:
    clean = _strip_comments(src).replace("\0\0", "//")
    for m in re.finditer(r'(?m)^import\s*\(([^)]*)\)|^import\s+(\w+\s+)?"([^"]+)"', clean):
        lines = m.group(1).splitlines() if m.group(1) is not None else [f'{m.group(2) or ""}"{m.group(3)}"']
        for line in lines:
            im = re.match(r'\s*(\w+|_|\.)?\s*"([^"]+)"', line)
            if im:
                path = im.group(2)
                alias = im.group(1) or re.sub(r"/v\d+$", "", path).rsplit("/", 1)[-1].replace("-", "")
                if path.startswith("gopkg.in/"):
                    alias = path.rsplit("/", 1)[-1].split(".")[0]
                pkg.imports[alias] = path
    for m in re.finditer(r"func\s*\(\s*\w*\s*\*?\s*(\w+)\s*\)\s*UnmarshalYAML\b", clean):
        pkg.custom.add(m.group(1))
    # type declarations: `type X ...` and entries of `type ( ... )` groups
    decls: list[tuple[str, int]] = []
    for m in re.finditer(r"(?m)^type\s+(\w+)(?:\[[^\]]*\])?\s+", clean):
        decls.append((m.group(1), m.end()))
    for m in re.finditer(r"(?m)^type\s*\(", clean):
        end = clean.index("\n)", m.end())
        for dm in re.finditer(r"(?m)^\t(\w+)\s+", clean[m.end() : end]):
            decls.append((dm.group(1), m.end() + dm.end()))
    for name, pos in decls:
        rest = clean[pos:]
        if rest.startswith("="):
            rest = rest[1:].lstrip()
            pos = len(clean) - len(rest)
        if rest.startswith("struct"):
            open_at = clean.index("{", pos)
            pkg.structs[name] = clean[open_at + 1 : _block(clean, open_at) - 1]
        elif not rest.startswith(("interface", "func")):
            pkg.aliases[name] = rest.split("\n", 1)[0].strip()


def _fields(body: str):
    """Yield (names or None if embedded, type expression, tag) for each field of a struct body."""
    i = 0
    while i < len(body):
        nl = body.find("\n", i)
        line_end = len(body) if nl < 0 else nl
        line = body[i:line_end].strip()
        if "struct" in line and line.rstrip().endswith("{") and "`" not in line:
            open_at = body.index("{", i)
            close = _block(body, open_at)
            tag_m = re.match(r"\s*(`[^`]*`)?", body[close:])
            head = line[: line.index("struct")].split()
            yield head, body[body.index("struct", i) : close], tag_m.group(1) if tag_m else None
            nl = body.find("\n", close)
            i = len(body) if nl < 0 else nl + 1
            continue
        i = line_end + 1
        if not line:
            continue
        tag = None
        tm = re.search(r"`[^`]*`\s*$", line)
        if tm:
            tag, line = tm.group(0), line[: tm.start()].strip()
        fm = re.match(r"^(\w+(?:\s*,\s*\w+)*)\s+(\S.*)$", line)
        if fm:
            yield [n.strip() for n in fm.group(1).split(",")], fm.group(2), tag
        else:
            yield None, line, tag


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="IMPORT/PATH.Type, e.g. github.com/livekit/livekit-server/pkg/config.Config")
    ap.add_argument("--module", action="append", default=[], help="IMPORT_PREFIX=GIT_DIR@COMMIT")
    ap.add_argument("--opaque", action="append", default=[], help="import prefix to leave unchecked")
    args = ap.parse_args()
    modules = {}
    for spec in args.module:
        prefix, rest = spec.split("=", 1)
        repo, commit = rest.rsplit("@", 1)
        modules[prefix] = (repo, commit)
    import_path, type_name = args.root.rsplit(".", 1)
    tree = Extractor(modules, args.opaque).named(import_path, type_name, ())
    yaml.safe_dump(tree, sys.stdout, sort_keys=True, default_flow_style=False)


if __name__ == "__main__":
    main()
