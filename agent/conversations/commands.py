"""`voice-agent conversations list|show ID|export`: the saved conversations from the command line, read from
the configured database (VOICE_AGENT_CONVERSATIONS_URL, else VOICE_AGENT_CONVERSATIONS_PATH)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import StartupError
from ..settings import Settings
from .database import Database, open_database, parse_time


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("conversations", help="saved conversations: list, show one, export as JSON lines")
    actions = p.add_subparsers(dest="conversations_command", required=True)
    listing = actions.add_parser("list", help="the newest calls, newest first")
    listing.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    show = actions.add_parser("show", help="one call and its transcript")
    show.add_argument("id", help="the call's id (its session id)")
    show.add_argument("--json", action="store_true", help="one JSON object instead of text")
    export = actions.add_parser("export", help="every call with its transcript, one JSON object a line")
    export.add_argument("--since", type=_time, help="only calls started at or after this ISO 8601 time")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return int(value)


def _time(value: str) -> Any:
    try:
        return parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "must be an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T12:00Z"
        ) from None


def run(args: argparse.Namespace, settings: Settings) -> None:
    database = open_database(settings)
    try:
        if args.conversations_command == "list":
            _list(database, args.limit, as_json=args.json)
        elif args.conversations_command == "show":
            call = database.get_call(args.id)
            if call is None:
                raise StartupError(
                    f"no saved conversation {args.id!r} (see `voice-agent conversations list`)"
                )
            print(json.dumps(call, indent=2) if args.json else format_call(call))
        else:
            for call in database.export(args.since):
                sys.stdout.write(json.dumps(call) + "\n")
    finally:
        database.close()


def _list(database: Database, limit: int, *, as_json: bool) -> None:
    calls = database.list_calls(limit)
    if as_json:
        print(json.dumps({"conversations": calls}, indent=2))
        return
    if not calls:
        print("no saved conversations")
        return
    print(f"{'started (UTC)':<20} {'transport':<9} {'messages':>8}  {'end':<24} id")
    for call in calls:
        started = (call["started_at"] or "")[:19].replace("T", " ")
        print(
            f"{started:<20} {call['transport']:<9} {call['messages']:>8}  {call['end_reason'] or '-':<24} {call['id']}"
        )


def format_call(call: dict[str, Any]) -> str:
    lines = [f"call {call['id']} ({call['transport']})"]
    for key in ("room", "participant", "caller_number", "trunk_number", "direction"):
        if call[key]:
            lines.append(f"  {key.replace('_', ' ')}: {call[key]}")
    lines.append(f"  started: {call['started_at']}")
    lines.append(f"  ended: {call['ended_at'] or '-'} ({call['end_reason'] or 'not ended'})")
    for entry in call["transcript"]:
        at = entry["at"][11:23]
        if entry["kind"] == "message":
            mark = " [interrupted]" if entry["interrupted"] else ""
            lines.append(f"{at} {entry['role']:>5}: {entry['text']}{mark}")
        elif entry["kind"] == "false_interruption":
            lines.append(f"{at} (false interruption, agent resumed: {entry['details'].get('resumed')})")
        else:
            lines.append(f"{at} (tool {entry['text']}: {entry['details'].get('arguments')})")
    return "\n".join(lines)
