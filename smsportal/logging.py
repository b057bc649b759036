"""A logging filter that masks API keys, webhook secrets and bearer tokens."""
import logging
import re

_SECRET = re.compile(r"(sk_(?:live|test)_[0-9A-Za-z]{12}_)[0-9A-Za-z]+|(whsec_)[0-9A-Za-z+/=]+|(Bearer\s+)\S+")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
