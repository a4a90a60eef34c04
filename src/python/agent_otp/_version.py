#: Sent as User-Agent and X-Agent-OTP-SDK, so the audit trail shows which client made a call.
SDK_VERSION = "0.1.0"
