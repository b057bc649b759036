"""A logging filter that masks API keys, webhook secrets and bearer tokens."""
import logging
import re

_SECRET = re.compile(r"(sk_(?:live|test)_[0-9A-Za-z]{12}_)[0-9A-Za-z]+|(whsec_)[0-9A-Za-z+/=]+|(Bearer\s+)\S+")
# Renders a traceback the way every handler's Formatter would, so the filter can mask it once.
_TRACEBACKS = logging.Formatter()


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # An exception's text can quote a credential too. Formatters reuse record.exc_text
        # when it is set, so the masked traceback is what every handler writes.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
