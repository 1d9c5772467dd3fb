"""Phone calls through livekit-sip: provisioning (trunks, dispatch rule, outbound calls), and what the one
session assembly adds when its caller is on the phone (greeting, keypad, transfer, hang-up, limits)."""
