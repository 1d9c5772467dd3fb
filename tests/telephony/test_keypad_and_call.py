import logging

import pytest

from agent.telephony.call import masked
from agent.telephony.keypad import entry_text
from agent.telephony.redact import install, redact


def test_an_entry_reads_as_a_user_turn() -> None:
    assert entry_text(["1", "2", "*"]) == "The caller pressed on the keypad: 1 2 *"


def test_numbers_in_logs_keep_two_digits() -> None:
    assert masked("+15550100123") == "**********23"
    assert masked("") == "(hidden)"


def test_numbers_are_masked_in_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("livekit.agents").info(
            "closing session in %s", "call_+15550100123_x7Yz", extra={"participant": "sip_+15550100123"}
        )
    (record,) = caplog.records
    assert "+15550100123" not in record.getMessage() and record.getMessage().endswith(
        "call_**********23_x7Yz"
    )
    assert record.participant == "sip_**********23"  # type: ignore[attr-defined]
    assert redact("pid 12345 at 10.203.0.1:5060") == "pid 12345 at 10.203.0.1:5060", "not every number"
