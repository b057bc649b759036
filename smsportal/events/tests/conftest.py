"""The event layer's tests send the seed's alphanumeric sender to US numbers: give the US and Canada a platform
shared sender number, which sender substitution uses (the US takes no alphanumeric sender; docs/compliance.md
"Sender IDs"). Only these tests: a shared sender everywhere would hide the 422 `sender_not_supported`."""
from numbers.tests.factories import shared_senders

import pytest


@pytest.fixture(autouse=True)
def _shared_senders(db):
    shared_senders("US", "CA")
