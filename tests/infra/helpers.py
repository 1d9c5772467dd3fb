"""Shared helpers of the static deployment-file checks: file loading, compose interpolation, durations, and
the accepted-key walk for livekit-server / livekit-sip configs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def load_yaml(path: Path | str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def load_yaml_docs(path: Path | str) -> list[Any]:
    return [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d is not None]


def key_tree(name: str) -> dict[str, Any]:
    """An accepted-key tree of schemas/ (see schemas/README.md for the format and sources)."""
    return yaml.safe_load((SCHEMAS / name).read_text())


def unknown_keys(value: Any, tree: Any, path: str = "") -> list[str]:
    """Every key of `value` the Go config struct described by `tree` does not declare, plus shape errors."""
    where = path or "<root>"
    if tree == "any" or value is None:
        return []
    if tree == "scalar":
        nested = isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, dict | list) for v in value)
        )
        return [f"{where}: expected a value, got a mapping/nested list"] if nested else []
    if tree == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        return [f"{where}.{k}: expected a value" for k, v in value.items() if isinstance(v, dict | list)]
    if not isinstance(tree, dict):
        raise TypeError(f"bad key tree node at {where}: {tree!r}")
    if "[]" in tree:
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [p for i, item in enumerate(value) for p in unknown_keys(item, tree["[]"], f"{path}[{i}]")]
    if "{}" in tree:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        return [p for k, item in value.items() for p in unknown_keys(item, tree["{}"], f"{path}.{k}")]
    if not isinstance(value, dict):
        return [f"{where}: expected a mapping"]
    problems = []
    for key, item in value.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in tree:
            problems.append(f"{key_path}: unknown key")
        else:
            problems.extend(unknown_keys(item, tree[key], key_path))
    return problems


_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose-style `${VAR}`, `${VAR:-default}`, `${VAR:?error}` substitution; unset required vars get
    a dummy value so the file can be schema-checked without a real .env."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg
        return "dummy"

    if isinstance(value, str):
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | float) -> float:
    """Compose duration ("330s", "1m30s", "6m") in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"not a compose duration: {value!r}")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
