"""SIPp (Debian's sip-tester) as the phone's SIP user agent in the tests: it places or answers one call and
does all the signaling (INVITE/ACK/BYE, answering REFER with 202 + NOTIFY), while the media goes to the
test's own RTP endpoint (agent/bench/phone_caller.py), whose address the SDP names. Scenarios are written
per call, so each test says how its call ends. What SIPp sees is logged to a file the test reads."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

SDP = """v=0
o=phone 53655765 2353687637 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [rtp_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""

OK_FOR_REQUEST = """<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>"""

# SDP media of the other side, for the test's RTP endpoint
MEDIA = """<action>
  <ereg regexp="c=IN IP4 ([0-9.]+)" search_in="body" check_it="true" assign_to="c_line,media_ip"/>
  <ereg regexp="m=audio ([0-9]+)" search_in="body" check_it="true" assign_to="m_line,media_port"/>
  <log message="media [$media_ip] [$media_port] from [$c_line] [$m_line]"/>
</action>"""

DIALOG = """From: "Phone" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]"""

INVITE = f"""<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Phone" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}]]></send>
<label id="1"/>
<recv response="100" optional="true" next="1"/>
<recv response="180" optional="true" next="1"/>
<recv response="183" optional="true" next="1"/>
<recv response="200" rtd="true" rrs="true">{MEDIA}</recv>
<send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{DIALOG}
CSeq: 1 ACK
[routes]
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<nop><action><log message="answered"/></action></nop>"""

# the far end hangs up (BYE) or transfers the call (REFER, answered 202 + NOTIFY "200 OK", then its BYE).
# The NOTIFY comes a second after the 202, as from a phone that places the new call: livekit-sip v1.8.0
# fails the transfer ("transaction failed to complete") when it handles both at nearly the same moment
# (seen with 200 ms between them on a loaded 2-core machine, where livekit-sip answered the NOTIFY 5 s late).
WAIT_FOR_BYE = f"""<label id="2"/>
<recv request="REFER" optional="true" next="3">
  <action>
    <ereg regexp="Refer-To: *&lt;?([^&gt;\\r\\n]+)" search_in="msg" check_it="true" assign_to="refer_line,refer_to"/>
    <log message="refer-to [$refer_to] from [$refer_line]"/>
  </action>
</recv>
<recv request="BYE"><action><log message="bye received"/></action></recv>
{OK_FOR_REQUEST}
<nop next="9"/>
<label id="3"/>
<send><![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[caller]@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
<pause milliseconds="1000"/>
<send><![CDATA[
NOTIFY [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{DIALOG}
CSeq: 2 NOTIFY
[routes]
Contact: <sip:[caller]@[local_ip]:[local_port]>
Event: refer
Subscription-State: terminated;reason=noresource
Max-Forwards: 70
Content-Type: message/sipfrag;version=2.0
Content-Length: [len]

SIP/2.0 200 OK
]]></send>
<recv response="200"/>
<nop next="2"/>
<label id="9"/>"""

# the same, but a REFER is declined (603): the transfer fails and the call goes on
DECLINE_REFER = (
    WAIT_FOR_BYE[: WAIT_FOR_BYE.index('<label id="3"/>')]
    + """<label id="3"/>
<send><![CDATA[
SIP/2.0 603 Decline
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<nop next="2"/>
<label id="9"/>"""
)

# the phone hangs up after `-d` milliseconds (a <pause/> without a duration waits that long)
HANG_UP = f"""<pause/>
<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{DIALOG}
CSeq: 2 BYE
[routes]
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200"><action><log message="hung up"/></action></recv>"""

# answering a call placed by livekit-sip (outbound): ring, answer, wait for its BYE
ANSWER = f"""<recv request="INVITE" crlf="true">{MEDIA}</recv>
<send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:phone@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

{SDP}]]></send>
<recv request="ACK" rtd="true" crlf="true"><action><log message="answered"/></action></recv>
<recv request="BYE"><action><log message="bye received"/></action></recv>
{OK_FOR_REQUEST}"""


def scenario(name: str, *steps: str) -> str:
    return (
        f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
        + "\n".join(steps)
        + "\n</scenario>\n"
    )


@dataclass
class Sipp:
    process: asyncio.subprocess.Process
    log: Path
    errors: Path
    messages: Path

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    async def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if m := re.search(pattern, line):
                    return m
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise TimeoutError(
                    f"SIPp never logged {pattern!r} ({self.process.returncode=}):\n{self.report()}"
                )
            await asyncio.sleep(0.05)

    async def media(self, timeout: float = 120.0) -> tuple[str, int]:
        """The RTP address the other side's SDP names."""
        m = await self.wait_for_line(r"media ([0-9.]+) ([0-9]+)", timeout)
        return m.group(1), int(m.group(2))

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def report(self) -> str:
        parts = []
        for path in (self.log, self.errors, self.messages):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)


async def start_sipp(
    xml: str,
    workdir: Path,
    *,
    local_ip: str,
    local_port: int,
    rtp_port: int,
    caller: str = "+15550100999",
    remote: str | None = None,
    service: str = "",
    hang_up_after_ms: int = 0,
    timeout_s: int = 240,
) -> Sipp:
    """Run one call of scenario `xml`: as the calling phone when `remote` (host:port) is given, otherwise as
    the phone that answers on local_ip:local_port."""
    binary = shutil.which("sipp")
    assert binary, "SIPp is not installed: `make test` installs Debian's sip-tester"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "scenario.xml"
    path.write_text(xml)
    log, errors, messages = workdir / "sipp.log", workdir / "errors.log", workdir / "messages.log"
    argv = [
        binary,
        "-sf",
        str(path),
        "-i",
        local_ip,
        "-p",
        str(local_port),
        "-t",
        "u1",
        "-m",
        "1",
        "-key",
        "rtp_port",
        str(rtp_port),
        "-key",
        "caller",
        caller,
        "-d",
        str(hang_up_after_ms),
        "-mp",
        str(rtp_port + 2),  # SIPp's own media port, unused: the test's endpoint owns rtp_port
        "-nostdin",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-max_recv_loops",
        "1000",
        "-trace_logs",
        "-log_file",
        str(log),
        "-trace_err",
        "-error_file",
        str(errors),
        "-trace_msg",
        "-message_file",
        str(messages),
    ]
    if remote:
        argv += ["-s", service, remote]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return Sipp(process, log, errors, messages)
