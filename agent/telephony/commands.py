"""`voice-agent sip setup|list|delete|call NUMBER`: provisioning and outbound calls from the command line."""

from __future__ import annotations

import argparse
import asyncio

from google.protobuf import json_format

from ..settings import Settings
from .provision import SipAdmin


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sip", help="phone calls: provision trunks and the dispatch rule, place calls")
    actions = p.add_subparsers(dest="sip_command", required=True)
    actions.add_parser("setup", help="create or update the inbound trunk, dispatch rule and outbound trunk")
    actions.add_parser("list", help="list the server's SIP trunks and dispatch rules")
    actions.add_parser("delete", help="delete what `setup` created")
    call = actions.add_parser("call", help="dial a number; the agent talks when the callee answers")
    call.add_argument("number", help="E.164 number (+15550100000) or sip:user@host")
    call.add_argument("--room", help="room name (default: a fresh call-out-... room)")


def run(args: argparse.Namespace, settings: Settings) -> None:
    asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> None:
    async with SipAdmin(settings) as admin:
        if args.sip_command == "setup":
            done = await admin.setup()
            print(f"inbound trunk {done.inbound_trunk.sip_trunk_id} ({done.inbound_trunk.name})")
            print(f"dispatch rule {done.dispatch_rule.sip_dispatch_rule_id} ({done.dispatch_rule.name})")
            if done.outbound_trunk is not None:
                print(f"outbound trunk {done.outbound_trunk.sip_trunk_id} ({done.outbound_trunk.name})")
            else:
                print("no outbound trunk (set VOICE_AGENT_SIP_OUTBOUND_ADDRESS to place calls)")
        elif args.sip_command == "list":
            for kind, items in (await admin.listing()).items():
                print(f"{kind}: {len(items)}")
                for item in items:
                    shown = json_format.MessageToDict(item)
                    shown.pop("authPassword", None)
                    print(f"  {shown}")
        elif args.sip_command == "delete":
            deleted = await admin.delete()
            print("deleted " + (", ".join(deleted) if deleted else "nothing"))
        else:
            info = await admin.call(args.number, room=args.room)
            print(f"answered: room {info.room_name}, participant {info.participant_identity}")
