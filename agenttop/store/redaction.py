"""What the ingest scan lets reach the file: the PII kinds looked for (a user may turn
some off), whether values are redacted, and the key of the digests stored with PII
findings. The receiver hands its decoding workers one ``ScanPolicy``.

Kept apart from ``agenttop.analysis.scan`` (which compiles its patterns on import) so that
the command line can name the kinds and build a policy without paying for that.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

#: The PII patterns of ``agenttop.analysis.scan``, by name (scan checks the two agree).
PII_KINDS: tuple[str, ...] = (
    "private_key", "anthropic_key", "openai_key", "aws_key", "github_token", "slack_token",
    "google_api_key", "bearer_token", "card", "email", "ssn", "phone", "ipv4",
)

# The key of the digests that link a PII value in an output to the same value in an input.
# Random, and never written anywhere: the digests on disk cannot be tested against guesses
# (an SSN has only 10^9 values). Pickled with the policy, so a receiver's decoding workers
# share it; after a restart, an output is compared only with inputs received since.
_PROCESS_KEY = os.urandom(16)


class ScanPolicy(NamedTuple):
    """How text is scanned on ingest."""

    redact: bool = True  # False: PII is stored as received (findings are still recorded)
    ignore: frozenset[str] = frozenset()  # PII kinds not looked for
    key: bytes = _PROCESS_KEY


DEFAULT_POLICY = ScanPolicy()


def pii_digest(key: bytes, pattern: str, value: str) -> int:
    """A 63-bit keyed digest of a PII value, the same however it was punctuated."""
    canonical = "".join(ch for ch in value.lower() if ch.isalnum())
    return int.from_bytes(hashlib.blake2b(f"{pattern}:{canonical}".encode(), key=key,
                                          digest_size=8).digest()) >> 1

