"""SIP provisioning on a LiveKit server with livekit-sip: the inbound trunk, its dispatch rule and the
outbound trunk this project uses, created or updated in place (found by name, so running it twice changes
nothing), listed, deleted; and outbound calls (`voice-agent sip call NUMBER`).

The definitions are the protojson files of infra/sip/ (the same ones `lk sip ... create` reads); settings
override the parts an operator changes per deployment (numbers, allowed addresses, credentials, agent name).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit import api

from ..errors import StartupError
from ..settings import Settings

PHONE_NUMBER = re.compile(r"^\+?[1-9][0-9]{2,14}$")  # E.164, the "+" optional
SIP_URI = re.compile(r"^sip:[^@\s]+@[^\s]+$")

PLACEHOLDER = "CHANGE-ME"  # marks what an operator must edit in infra/sip/*.json

M = TypeVar("M", bound=Message)
T = TypeVar("T")


@dataclass
class Provisioned:
    inbound_trunk: api.SIPInboundTrunkInfo
    dispatch_rule: api.SIPDispatchRuleInfo
    outbound_trunk: api.SIPOutboundTrunkInfo | None


def check_number(number: str) -> str:
    """A callee as livekit-sip takes it: E.164 digits (spaces, dashes and dots allowed) or a sip: URI."""
    compact = re.sub(r"[\s().-]", "", number)
    if PHONE_NUMBER.match(compact) or SIP_URI.match(number):
        return compact if PHONE_NUMBER.match(compact) else number
    raise StartupError(f"{number!r} is not a phone number (E.164, e.g. +15550100000) or a sip:user@host URI")


def check_placeholders(
    trunk: api.SIPInboundTrunkInfo | api.SIPOutboundTrunkInfo, path: Path, knob: str
) -> None:
    if PLACEHOLDER in trunk.auth_username or PLACEHOLDER in trunk.auth_password:
        raise StartupError(
            f"{path} still has the CHANGE-ME credentials: set {knob} (empty: no authentication)"
        )


def read_definition(path: Path, message: type[M]) -> M:
    try:
        return json_format.Parse(path.read_text(), message(), ignore_unknown_fields=False)
    except FileNotFoundError:
        raise StartupError(
            f"{path} not found (set its path in the settings, see infra/sip/README.md)"
        ) from None
    except json_format.ParseError as e:
        raise StartupError(f"{path}: {e}") from None


def inbound_trunk(settings: Settings) -> api.SIPInboundTrunkInfo:
    trunk = read_definition(settings.sip_inbound_trunk, api.CreateSIPInboundTrunkRequest).trunk
    if settings.sip_numbers is not None:
        trunk.ClearField("numbers")
        trunk.numbers.extend(settings.sip_numbers)
    if settings.sip_allowed_addresses is not None:
        trunk.ClearField("allowed_addresses")
        trunk.allowed_addresses.extend(settings.sip_allowed_addresses)
    if settings.sip_auth_username is not None:  # "" turns digest authentication off
        trunk.auth_username = settings.sip_auth_username
        trunk.auth_password = (
            settings.sip_auth_password.get_secret_value() if settings.sip_auth_password else ""
        )
    check_placeholders(trunk, settings.sip_inbound_trunk, "VOICE_AGENT_SIP_AUTH_USERNAME/_PASSWORD")
    if not (trunk.numbers or trunk.allowed_addresses or trunk.auth_username):
        raise StartupError(
            "the inbound trunk would accept calls from anyone: set VOICE_AGENT_SIP_ALLOWED_ADDRESSES (your "
            "provider's addresses) or VOICE_AGENT_SIP_AUTH_USERNAME/_PASSWORD"
        )
    return trunk


def dispatch_rule(settings: Settings, trunk_id: str) -> api.SIPDispatchRuleInfo:
    """One room per call, scoped to our trunk, dispatching the agent named VOICE_AGENT_AGENT_NAME."""
    request = read_definition(settings.sip_dispatch_rule, api.CreateSIPDispatchRuleRequest)
    rule = request.dispatch_rule
    rule.ClearField("trunk_ids")
    rule.trunk_ids.append(trunk_id)
    agents = rule.room_config.agents
    if not agents:
        agents.add()
    for agent in agents:
        agent.agent_name = settings.agent_name
    return rule


def outbound_trunk(settings: Settings) -> api.SIPOutboundTrunkInfo | None:
    """Only when an address to dial through is configured (in the file or VOICE_AGENT_SIP_OUTBOUND_ADDRESS)."""
    if not settings.sip_outbound_trunk.is_file():
        return None
    trunk = read_definition(settings.sip_outbound_trunk, api.CreateSIPOutboundTrunkRequest).trunk
    if settings.sip_outbound_address is not None:
        trunk.address = settings.sip_outbound_address
    if settings.sip_outbound_number is not None:
        trunk.ClearField("numbers")
        trunk.numbers.append(settings.sip_outbound_number)
    if settings.sip_outbound_auth_username is not None:
        trunk.auth_username = settings.sip_outbound_auth_username
        secret = settings.sip_outbound_auth_password
        trunk.auth_password = secret.get_secret_value() if secret else ""
    if not trunk.address or PLACEHOLDER in trunk.address:
        return None
    check_placeholders(trunk, settings.sip_outbound_trunk, "VOICE_AGENT_SIP_OUTBOUND_AUTH_USERNAME/_PASSWORD")
    return trunk


def named(items: list[T], name: str) -> T | None:
    return next((item for item in items if getattr(item, "name", None) == name), None)


class SipAdmin:
    """`async with SipAdmin(settings) as admin:` the SIP API of the configured LiveKit server."""

    def __init__(self, settings: Settings) -> None:
        if not settings.has_livekit:
            raise StartupError(
                "set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET (your LiveKit server)"
            )
        assert settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret
        self.settings = settings
        self._lk = api.LiveKitAPI(
            settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret.get_secret_value()
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._lk.aclose()

    async def _call(self, coro: Any) -> Any:
        """One line for what goes wrong talking to the server, whatever the call."""
        try:
            return await coro
        except api.TwirpError as e:
            hint = (
                " (livekit-sip needs redis, shared with livekit-server)"
                if "sip not connected" in e.message
                else ""
            )
            raise StartupError(f"LiveKit server refused: {e.message}{hint}") from None
        except aiohttp.ClientError as e:
            raise StartupError(
                f"cannot reach the LiveKit server at {self.settings.livekit_url}: {e}"
            ) from None

    async def setup(self) -> Provisioned:
        sip, listed = self._lk.sip, await self.listing()
        want = inbound_trunk(self.settings)
        if found := named(listed["inbound trunks"], want.name):
            trunk = await self._call(sip.update_inbound_trunk(found.sip_trunk_id, want))
        else:
            trunk = await self._call(sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=want)))

        rule_want = dispatch_rule(self.settings, trunk.sip_trunk_id)
        if found_rule := named(listed["dispatch rules"], rule_want.name):
            rule = await self._call(sip.update_dispatch_rule(found_rule.sip_dispatch_rule_id, rule_want))
        else:
            rule = await self._call(
                sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(dispatch_rule=rule_want))
            )

        out, out_want = None, outbound_trunk(self.settings)
        if out_want is not None and (found_out := named(listed["outbound trunks"], out_want.name)):
            out = await self._call(sip.update_outbound_trunk(found_out.sip_trunk_id, out_want))
        elif out_want is not None:
            out = await self._call(
                sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=out_want))
            )
        return Provisioned(trunk, rule, out)

    async def listing(self) -> dict[str, list[Any]]:
        sip = self._lk.sip
        return {
            "inbound trunks": list(
                (await self._call(sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest()))).items
            ),
            "outbound trunks": list(
                (await self._call(sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest()))).items
            ),
            "dispatch rules": list(
                (await self._call(sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest()))).items
            ),
        }

    async def delete(self) -> list[str]:
        """Delete what `setup` creates (by the names in the definitions); returns the deleted IDs."""
        names = {
            inbound_trunk(self.settings).name,
            read_definition(
                self.settings.sip_dispatch_rule, api.CreateSIPDispatchRuleRequest
            ).dispatch_rule.name,
        }
        out = outbound_trunk(self.settings)
        if out is not None:
            names.add(out.name)
        listed = await self.listing()
        deleted = []
        for rule in listed["dispatch rules"]:
            if rule.name in names:
                await self._call(
                    self._lk.sip.delete_dispatch_rule(
                        api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id)
                    )
                )
                deleted.append(rule.sip_dispatch_rule_id)
        for trunk in listed["inbound trunks"] + listed["outbound trunks"]:
            if trunk.name in names:
                await self._call(
                    self._lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
                )
                deleted.append(trunk.sip_trunk_id)
        return deleted

    async def call(self, number: str, *, room: str | None = None) -> api.SIPParticipantInfo:
        """Dial `number` through the outbound trunk into a new room with the agent dispatched to it; returns
        once the callee answered (the agent greets when it sees the call active)."""
        callee = check_number(number)
        out = outbound_trunk(self.settings)
        if out is None:
            raise StartupError(
                "no outbound trunk: set VOICE_AGENT_SIP_OUTBOUND_ADDRESS (your provider's SIP host) and run "
                "`voice-agent sip setup`"
            )
        trunk = named((await self.listing())["outbound trunks"], out.name)
        if trunk is None:
            raise StartupError(
                f"outbound trunk {out.name!r} is not on the server: run `voice-agent sip setup`"
            )
        room = room or f"call-out-{secrets.token_hex(4)}"
        dispatch = api.RoomAgentDispatch(agent_name=self.settings.agent_name)
        await self._call(self._lk.room.create_room(api.CreateRoomRequest(name=room, agents=[dispatch])))
        try:
            return await self._lk.sip.create_sip_participant(
                api.CreateSIPParticipantRequest(
                    sip_trunk_id=trunk.sip_trunk_id,
                    sip_call_to=callee,
                    room_name=room,
                    participant_identity=f"sip-{secrets.token_hex(4)}",
                    participant_name="Phone",
                    wait_until_answered=True,
                )
            )
        except api.TwirpError as e:  # SipCallError too: it carries the SIP status in its message
            raise StartupError(f"the call to {callee} failed: {e.message}") from None
        except (TimeoutError, aiohttp.ClientError) as e:
            raise StartupError(f"the call to {callee} failed: no answer from the server ({e!r})") from None
