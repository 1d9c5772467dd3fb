"""What an offer must be before aiortc sees it: a WebRTC offer (ICE credentials, a DTLS fingerprint and setup,
secure RTP with RTCP mux) with an audio section, and at most a data channel besides.

aiortc's parser (`aiortc/sdp.py`) asserts, indexes and converts without checks, so anything it would trip over
is refused here with a message of our own; whatever still fails in aiortc is reported as an unusable offer
without its exception text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aiortc import rtp

MAX_SDP_CHARS = 64 * 1024
MAX_LINES = 1000
MAX_MEDIA = 4  # the page offers audio + a data channel

RTP_PROFILE = "UDP/TLS/RTP/SAVPF"
SCTP_PROFILE = "UDP/DTLS/SCTP"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
FINGERPRINT_ALGORITHMS = frozenset({"sha-256", "sha-384", "sha-512"})

_LINE = re.compile(r"^[a-z]=[\x20-\x7e]*$")  # aiortc splits lines as str.splitlines() does: ASCII only
_MEDIA = re.compile(r"^m=(\S+) ([0-9]{1,5}) (\S+) (\S.*)$")
_CONNECTION = re.compile(r"^c=IN (IP4|IP6) [^ ]+$")
_UINT = r"[0-9]{1,10}"
_MID = re.compile(r"^[A-Za-z0-9_.~-]{1,32}$")
_FINGERPRINT = re.compile(r"^(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,63})$")
# a=<attr>:<value> that aiortc converts without checks: the value must match, or aiortc would raise
_ATTRIBUTE_VALUES = {
    "fingerprint": _FINGERPRINT,
    "setup": re.compile(r"^(?:actpass|active|passive)$"),
    "extmap": re.compile(rf"^{_UINT}(?:/[a-z]+)? \S+$"),
    "rtpmap": re.compile(rf"^{_UINT} [^/ ]+/{_UINT}(?:/{_UINT})?$"),
    "fmtp": re.compile(rf"^{_UINT} \S.*$"),
    "rtcp": re.compile(rf"^{_UINT}(?: IN (?:IP4|IP6) [^ ]+)?$"),
    "rtcp-fb": re.compile(r"^\S+ \S+.*$"),
    "ssrc": re.compile(rf"^{_UINT} [^:\s]+:.*$"),
    "ssrc-group": re.compile(rf"^\S+(?: {_UINT})*$"),
    "sctp-port": re.compile(rf"^{_UINT}$"),
    "max-message-size": re.compile(rf"^{_UINT}$"),
    "sctpmap": re.compile(rf"^{_UINT} \S.*$"),
    "ice-ufrag": re.compile(r"^[A-Za-z0-9+/]{4,256}$"),
    "ice-pwd": re.compile(r"^[A-Za-z0-9+/]{22,256}$"),
    "msid": re.compile(r"^\S+(?: \S+)?$"),
    "candidate": re.compile(rf"^\S+ {_UINT} \S+ {_UINT} \S+ {_UINT} typ \S+(?: \S+ \S+)*$"),
}
# fmtp parameters aiortc turns into int()
_INT_PARAMETERS = frozenset(
    {"apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo", "useinbandfec"}
)


class BadOffer(ValueError):
    """The client's offer cannot start a call; the message is safe to show the client."""


@dataclass
class _Section:
    kind: str = ""
    profile: str = ""
    formats: list[str] = field(default_factory=list)
    port: int = 0
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def values(self, name: str) -> list[str]:
        return self.attributes.get(name, [])


def _attribute(line: str) -> tuple[str, str | None]:
    name, sep, value = line[2:].partition(":")
    return name, value if sep else None


def _extra_ok(name: str, value: str) -> bool:
    """What a regex cannot say: a candidate's extensions come in pairs, of which rport is a number."""
    if name != "candidate":
        return True
    bits = value.split()
    return all(bits[i] != "rport" or bits[i + 1].isdigit() for i in range(8, len(bits) - 1, 2))


def _parse(sdp: str) -> tuple[_Section, list[_Section]]:
    if len(sdp) > MAX_SDP_CHARS:
        raise BadOffer(f"invalid SDP offer: longer than {MAX_SDP_CHARS} characters")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if len(lines) > MAX_LINES:
        raise BadOffer(f"invalid SDP offer: more than {MAX_LINES} lines")
    if not lines or lines[0] != "v=0":
        raise BadOffer('invalid SDP offer: it must start with "v=0"')
    session, media = _Section(), []
    current = session
    for number, line in enumerate(lines, start=1):
        if not _LINE.match(line):
            raise BadOffer(f"invalid SDP offer: line {number} is not <letter>=<printable ASCII>")
        if line.startswith("m="):
            m = _MEDIA.match(line)
            if not m:
                raise BadOffer(f"invalid SDP offer: line {number} is not a valid m= line")
            current = _Section(m.group(1), m.group(3), m.group(4).split(), int(m.group(2)))
            media.append(current)
            if len(media) > MAX_MEDIA:
                raise BadOffer(f"invalid SDP offer: more than {MAX_MEDIA} media sections")
        elif line.startswith("c=") and not _CONNECTION.match(line):
            raise BadOffer(f"invalid SDP offer: line {number} is not a valid c= line")
        elif line.startswith("a="):
            name, value = _attribute(line)
            pattern = _ATTRIBUTE_VALUES.get(name)
            if pattern is not None and (
                value is None or not pattern.match(value) or not _extra_ok(name, value)
            ):
                raise BadOffer(f"invalid SDP offer: malformed a={name} on line {number}")
            current.attributes.setdefault(name, []).append(value or "")
    return session, media


def _check_transport(session: _Section, section: _Section, index: int) -> None:
    where = f"media section {index} ({section.kind})"

    def effective(name: str) -> list[str]:
        return section.values(name) or session.values(name)

    fingerprints = effective("fingerprint")
    if not fingerprints:
        raise BadOffer(f"{where} has no DTLS fingerprint (a=fingerprint): only DTLS-SRTP is accepted")
    for value in fingerprints:
        m = _FINGERPRINT.match(value)
        if not m or m.group(1).lower() not in FINGERPRINT_ALGORITHMS:
            raise BadOffer(f"{where} has a malformed a=fingerprint (sha-256, sha-384 or sha-512 expected)")
    if not effective("setup"):
        raise BadOffer(f"{where} needs a=setup (actpass, active or passive)")
    if not effective("ice-ufrag") or not effective("ice-pwd"):
        raise BadOffer(f"invalid SDP offer: ICE username fragment or password is missing in {where}")


def _check_rtp(section: _Section, index: int) -> None:
    where = f"media section {index} (audio)"
    if section.profile != RTP_PROFILE:
        raise BadOffer(f"{where} uses {section.profile!r}: only {RTP_PROFILE} (DTLS-SRTP) is accepted")
    if sum(d in section.attributes for d in DIRECTIONS) != 1:
        raise BadOffer(f"{where} needs one direction (a=sendrecv, sendonly, recvonly or inactive)")
    if "rtcp-mux" not in section.attributes:
        raise BadOffer(f"{where} must use RTCP multiplexing (a=rtcp-mux)")
    for fmt in section.formats:
        if not fmt.isdigit() or int(fmt) > 127 or int(fmt) in rtp.FORBIDDEN_PAYLOAD_TYPES:
            raise BadOffer(f"{where} lists an invalid payload type {fmt[:16]!r}")
    mapped = {int(v.split(" ", 1)[0]) for v in section.values("rtpmap")}
    for value in section.values("fmtp"):
        pt, _, parameters = value.partition(" ")
        if int(pt) not in mapped:
            raise BadOffer(f"{where} has a=fmtp for payload type {pt} without a=rtpmap")
        for parameter in parameters.split(";"):
            key, sep, val = parameter.partition("=")
            if sep and key.strip() in _INT_PARAMETERS and not val.strip().lstrip("-").isdigit():
                raise BadOffer(f"{where} has a non-numeric fmtp parameter {key.strip()[:32]!r}")


def _check_sctp(section: _Section, index: int) -> None:
    where = f"media section {index} (data channel)"
    if section.profile != SCTP_PROFILE or section.formats != ["webrtc-datachannel"]:
        raise BadOffer(f"{where} must be {SCTP_PROFILE} webrtc-datachannel")


def check_offer(sdp: str) -> None:
    """Raise BadOffer (with a client-safe message) unless `sdp` is an offer this server can answer."""
    session, media = _parse(sdp)
    if not media:
        raise BadOffer("the offer has no audio track")
    for index, section in enumerate(media):
        if section.kind == "audio":
            _check_rtp(section, index)
        elif section.kind == "application":
            _check_sctp(section, index)
        elif section.kind == "video":
            raise BadOffer(f"media section {index} is video: the agent takes audio and a data channel only")
        else:
            raise BadOffer(f"media section {index} has an unknown media kind {section.kind[:32]!r}")
        _check_transport(session, section, index)
    mids = [s.values("mid") for s in media]
    if any(len(m) != 1 or not _MID.match(m[0]) for m in mids):
        raise BadOffer("every media section needs one a=mid (1-32 letters, digits or _.~-)")
    if len({m[0] for m in mids}) != len(mids):
        raise BadOffer("the offer repeats an a=mid")
    for group in session.values("group"):
        semantics, *items = group.split() or [""]
        if semantics == "BUNDLE" and (not items or not set(items) <= {m[0] for m in mids}):
            raise BadOffer("a=group:BUNDLE names a media section that is not in the offer")
    if sum(s.kind == "application" for s in media) > 1:
        raise BadOffer("the offer has more than one data channel section")
    if not any(s.kind == "audio" and s.port != 0 for s in media):
        raise BadOffer("the offer has no audio track")
