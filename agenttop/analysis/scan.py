"""PII and prompt-injection scanning of telemetry text, and PII redaction.

This module owns the detection rules (which PII, secrets and injection phrases exist, what
counts as a match, which token replaces each) and the engine that applies them fast enough
for the ingest hot path.  The receiver applies it to every string attribute, event attribute
and log body before anything reaches disk, so it is headless: the standard library plus the
optional ``hyperscan`` package, never textual or rich.

Design.  Every pattern has a precise finder: ``re`` expressions with boundary checks, plus a
validator where a regex cannot express the rule (Luhn, digit counts, IPv4 octets).  They are
written to start with a literal or a narrow character class, because ``re`` then skips ahead
in C; an expression starting with a lookbehind is tried at every position (~20 MB/s).  Even
so, ~30 finders over every string would blow the budget, and nearly all telemetry text holds
no PII, so each pattern also has *triggers*: cheap tests that are a guaranteed superset of
it.  Only patterns whose trigger fires run their finder.  Two interchangeable trigger
engines exist:

* ``hyperscan``: one multi-pattern scan of the UTF-8 bytes reports every fired trigger;
  used whenever the package imports.
* ``re``: substring tests (C memchr / two-way search) on a normalised copy of the text
  (ASCII lower-cased, every digit mapped to ``0``), so e.g. the SSN trigger is the plain
  substring ``000-00-0000``.

Triggers only decide *which* finders run, so both engines report identical hits; the tests
check both against ``engine="exhaustive"``, which runs every finder on every string.

Threads.  A ``Scanner`` may be shared; hyperscan databases and scratch space are per thread.
The hyperscan binding releases the GIL on every call, so in a process where other Python
threads are busy each call may wait a whole switch interval (5 ms) to get it back (measured:
3 us per span alone, ~400 us with one busy thread beside it).  Use it where the scanning
thread has the interpreter to itself, as in the receiver's decoder worker processes, and
``engine="re"`` (which never releases the GIL) anywhere else.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from agenttop.store.redaction import PII_KINDS

try:  # Optional C multi-pattern engine; everything works, slower, without it.
    import hyperscan as _hs
except ImportError:  # pragma: no cover - depends on the environment
    _hs = None

__all__ = ["PATTERNS", "Hit", "Scanner", "direction_of", "hyperscan_available"]

# The shortest thing any pattern matches is an IPv4 address such as "1.1.1.1".
_MIN_LEN = 7
# Characters of redacted context kept on each side of a hit in its excerpt.
_CONTEXT = 20
# An injection phrase is shown verbatim in its excerpt; longer ones are cut.
_MAX_SHOWN = 80

Span = tuple[int, int]


def _before(k: int, excluded: str) -> str:
    """Boundary on the character just before a ``k``-character prefix already consumed.

    Placed after the prefix (not in front of the expression) so ``re`` can still search
    for the prefix in C.  Values are often JSON-encoded message lists, where a newline
    before a value is backslash-n and that letter would defeat a \\w boundary, so a match
    may start right after such an escape.  ``excluded`` always holds the backslash: a
    match right after a lone one would leave a dangling escape in front of the
    replacement token and break the JSON.
    """
    k_ = f".{{{k}}}"
    return (rf"(?:(?<![{excluded}]{k_})|(?<=\\[nrtbf]{k_})"
            rf"|(?<=\\u[0-9A-Fa-f]{{4}}{k_}))")


# Numbers are not glued to a word, a dash-joined token, a decimal point or a "+".
_NUM_EXCL = r"\w\\.+-"
_NUM_AFTER = r"(?![\w-]|\.\d)"
# Keys and tokens are not the tail or head of a longer identifier.
_TOK_EXCL = r"\w\\-"
_TOK_AFTER = r"(?![\w-])"
# Whitespace inside a phrase, raw or JSON-escaped.
_WS = r"(?:\s|\\[nrt])+"


# -- validators: given a regex match, the span to report, or None to reject it ----------

def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _check_card(m: re.Match[str]) -> Span | None:
    raw = m.group(0)
    sep = m.group("sep")
    if sep is None:
        return m.span() if _luhn_ok(raw) else None
    groups = raw.split(sep)
    # A card followed by an unrelated space-separated number ("... 1111 2024") matches as
    # one long run; retry without the trailing groups.  A dash-joined run is one token.
    stop = 2 if sep == " " else len(groups) - 1
    for k in range(len(groups), stop, -1):
        digits = "".join(groups[:k])
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return m.start(), m.start() + len(sep.join(groups[:k]))
    return None


def _check_phone(m: re.Match[str]) -> Span | None:
    # E.164 caps a number at 15 digits; fewer than 8 is a short code or noise.
    n = sum(ch.isdigit() for ch in m.group(0))
    return m.span() if 8 <= n <= 15 else None


def _check_ipv4(m: re.Match[str]) -> Span | None:
    for octet in m.group(0).split("."):
        if int(octet) > 255 or (octet[0] == "0" and len(octet) > 1):
            return None
    # Loopback, private, link-local, documentation and other reserved addresses name no
    # one: a local model server's 127.0.0.1 in every LLM span is not PII.
    address = ipaddress.IPv4Address(m.group(0))
    if address.is_private or address.is_loopback or address.is_link_local or (
            address.is_reserved or address.is_unspecified or address.is_multicast):
        return None
    return m.span()


def _value_group(m: re.Match[str]) -> Span | None:
    return m.span("v")


# -- email: anchored on "@" -------------------------------------------------------------
# An email regex must start with its local part, i.e. at almost any letter, which ``re``
# cannot skip over quickly.  So find each "@", match the domain forwards, then the local
# part backwards within the 64 characters before it.  Equivalent to _EMAIL_SOURCE (the
# tests check it).
_EMAIL_LOCAL = r"[A-Za-z0-9][\w.%+-]{0,63}"
_EMAIL_LOCAL_BEFORE = r"(?:(?<![\w.%+\\-])|(?<=\\[nrtbf])|(?<=\\u[0-9A-Fa-f]{4}))"
_EMAIL_DOMAIN = r"@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])"
_EMAIL_SOURCE = _EMAIL_LOCAL_BEFORE + _EMAIL_LOCAL + _EMAIL_DOMAIN
_email_domain = re.compile(_EMAIL_DOMAIN, re.ASCII).match
_email_local = re.compile(_EMAIL_LOCAL_BEFORE + _EMAIL_LOCAL + r"\Z", re.ASCII).search


def _find_email(text: str) -> list[Span]:
    out: list[Span] = []
    floor = 0
    at = text.find("@")
    while at != -1:
        d = _email_domain(text, at)
        if d is not None:
            # Leftmost start whose local part reaches exactly up to this "@".
            local = _email_local(text, max(floor, at - 64), at)
            if local is not None:
                out.append((local.start(), d.end()))
                floor = d.end()
        at = text.find("@", max(at + 1, floor))
    return out


# -- private-key blocks -------------------------------------------------------------------
# From the header to the first footer; a truncated block (telemetry values get cut) up to
# the end of its base64, so the key material is still hidden.  The body never holds a bare
# quote or a lone backslash, so a block cannot run across JSON strings or split an escape.
# A finder rather than one lazy regex: with many headers and no footer, the regex would
# rescan the rest of the text for each header (quadratic); this remembers what it found.
_PEM_HEADER = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
_PEM_FOOTER = r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"
_PEM_BODY = r'(?:[^"\\]|\\[nrt/])'
_PEM_TAIL = r"(?:[A-Za-z0-9+/=\s]|\\[nrt/])*"
_PEM_SOURCE = f"{_PEM_HEADER}(?:{_PEM_BODY}*?{_PEM_FOOTER}|{_PEM_TAIL})"
_pem_header = re.compile(_PEM_HEADER, re.ASCII).search
_pem_footer = re.compile(_PEM_FOOTER, re.ASCII).search
_pem_body_stop = re.compile(r'"|\\(?![nrt/])', re.ASCII).search
_pem_tail = re.compile(_PEM_TAIL, re.ASCII).match


def _find_private_keys(text: str) -> list[Span]:
    out: list[Span] = []
    # Results of earlier searches, still valid while the body starts before them: the
    # first body stop at or after the header, and the first footer before that stop
    # (``footer == stop`` when there is none).
    stop = footer = footer_end = -1
    pos = 0
    while (h := _pem_header(text, pos)) is not None:
        body = h.end()
        if stop < body:
            m = _pem_body_stop(text, body)
            stop = len(text) if m is None else m.start()
        if footer < body:  # always so after ``stop`` moved: footer <= old stop < body
            f = _pem_footer(text, body, stop)
            footer, footer_end = (f.start(), f.end()) if f else (stop, -1)
        if footer < stop:
            out.append((h.start(), footer_end))
            pos = footer_end
        else:
            pos = _pem_tail(text, body).end()
            out.append((h.start(), pos))
    return out


# -- the patterns ---------------------------------------------------------------------

Finder = Callable[[str], list[Span]]


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    kind: str  # "pii" | "injection"
    token: str  # replacement text; unused for injection (never redacted)
    # Searched in order; for ``folded`` patterns on the lower-cased text.
    regexes: tuple[re.Pattern[str], ...]
    # Hyperscan triggers: each a superset of the matches of (part of) the pattern.
    hs: tuple[bytes, ...]
    # Trigger for the re engine, on the normalised text (see _fire_re), after ``pre``: a
    # character every normalised match holds, tested once per text for all sharing it.
    gate: Callable[[str], bool]
    pre: str
    check: Callable[[re.Match[str]], Span | None] | None = None
    rank: int = 0  # between equally long overlapping hits, the lower rank wins
    finder: Finder | None = None  # replaces ``regexes`` when set
    # Case-insensitive: written in lower case, searched on ``text.lower()`` when the text is
    # ASCII (so searches keep their literal prefix), else with these IGNORECASE twins.
    folded: tuple[re.Pattern[str], ...] = ()
    source: str = ""  # the whole pattern as one regex (the naive baseline in benchmarks)


def _pii(name: str, token: str, regexes: tuple[str, ...], hs: tuple[bytes, ...],
         pre: str, gate: Callable[[str], bool], *, rank: int,
         check: Callable[[re.Match[str]], Span | None] | None = None,
         ci: bool = False) -> _Pattern:
    compiled = tuple(re.compile(r, re.ASCII) for r in regexes)
    folded = tuple(re.compile(r, re.ASCII | re.IGNORECASE) for r in regexes) if ci else ()
    source = "|".join(f"(?:{r})" for r in regexes)
    return _Pattern(name, "pii", token, compiled, hs, gate, pre, check, rank, None, folded,
                    f"(?i:{source})" if ci else source)


def _has(*needles: str) -> Callable[[str], bool]:
    if len(needles) == 1:
        a = needles[0]
        return lambda n: a in n
    if len(needles) == 2:
        a, b = needles
        return lambda n: a in n or b in n
    return lambda n: any(x in n for x in needles)


def _search(expr: str) -> Callable[[str], bool]:
    search = re.compile(expr, re.ASCII).search
    return lambda n: search(n) is not None


# Gates that need more than a substring test (on the normalised text: digits are "0").
_CARD_GATE = re.compile(r"0000(?P<s>[ -])0{4,6}(?P=s)000", re.ASCII).search
_PHONE_GATE = re.compile(r"000(?P<s>[ .-])000(?P=s)0000", re.ASCII).search
_IP_GATE = re.compile(r"0\.0{1,3}\.0{1,3}\.0", re.ASCII).search
_REVEAL_GATE = re.compile(
    r"(?:your|the)(?:\s|\\[nrt])+(?:[a-z]+(?:\s|\\[nrt])+){0,2}(?:prompt|instructions)",
    re.ASCII).search
_NOW_GATE = re.compile(r"are(?:\s|\\[nrt])+now", re.ASCII).search
_MODE_GATE = re.compile(r"(?:developer|dan|god|jailbreak)(?:\s|\\[nrt])+mode", re.ASCII).search

_PRIVATE_KEY = _Pattern(
    "private_key", "pii", "[SECRET]", regexes=(), finder=_find_private_keys,
    source=_PEM_SOURCE, hs=(rb"BEGIN [A-Z0-9 ]*PRIVATE KEY-----",), pre="-",
    gate=_has("private key-----"), rank=0)
_EMAIL = _Pattern(
    "email", "pii", "[EMAIL]", regexes=(), finder=_find_email, source=_EMAIL_SOURCE,
    hs=(rb"[\w.%+-]@[A-Za-z0-9-]+\.[A-Za-z0-9-]",), pre="@", gate=lambda n: True, rank=4)
_BEARER = r"a-z0-9._~+/=-"

_PII_PATTERNS: tuple[_Pattern, ...] = (
    _PRIVATE_KEY,
    _pii("anthropic_key", "[SECRET]", ("sk-ant-" + _before(7, _TOK_EXCL) + r"[\w-]{20,}",),
         (rb"sk-ant-[\w-]{20}",), "-", _has("sk-ant-"), rank=1),
    _pii("openai_key", "[SECRET]", ("sk-" + _before(3, _TOK_EXCL) + r"(?!ant-)[\w-]{20,}",),
         (rb"sk-[\w-]{20}",), "-", _has("sk-"), rank=1),
    _pii("aws_key", "[SECRET]",
         ("A[KS]IA" + _before(4, r"A-Za-z0-9\\") + r"[0-9A-Z]{16}(?![A-Za-z0-9])",),
         (rb"A[KS]IA[0-9A-Z]{16}",), "", _has("akia", "asia"), rank=1),
    _pii("github_token", "[SECRET]",
         ("gh" + _before(2, _TOK_EXCL) + r"[pousr]_[A-Za-z0-9]{30,255}" + _TOK_AFTER,
          "github_pat_" + _before(11, _TOK_EXCL) + r"\w{22,255}" + _TOK_AFTER),
         (rb"gh[pousr]_[A-Za-z0-9]{30}", rb"github_pat_\w{22}"), "_",
         _search(r"gh[pousr]_|github_pat_"), rank=1),
    _pii("slack_token", "[SECRET]",
         ("xox" + _before(3, _TOK_EXCL) + r"[baprs]-[A-Za-z0-9-]{10,}",),
         (rb"xox[baprs]-[A-Za-z0-9-]{10}",), "-", _has("xox"), rank=1),
    _pii("google_api_key", "[SECRET]",
         ("AIza" + _before(4, _TOK_EXCL) + r"[\w-]{35}" + _TOK_AFTER,),
         (rb"AIza[\w-]{35}",), "", _has("aiza"), rank=1),
    # Only the credential is replaced, so the text still says what it was.  It must hold a
    # non-letter, or prose such as "bearer authentication" would be a hit.
    _pii("bearer_token", "[SECRET]",
         ("bearer" + _before(6, _TOK_EXCL) + _WS
          + rf"(?P<v>(?=[{_BEARER}]*[0-9._~+/=-])[{_BEARER}]{{12,}})",),
         (rb"bearer(?:\s|\\[nrt])+[a-z0-9._~+/=-]{12}",), "", _has("bearer"),
         check=_value_group, rank=2, ci=True),
    # Issued cards start with 2-6 (Mastercard 2-series to Discover/UnionPay), which also
    # keeps epoch timestamps in ms/us/ns (they start with 1) out.  Grouped forms use one
    # separator throughout and start with a group of four (4-4-4-4, 4-6-5, 4-4-4-4-3).
    _pii("card", "[CARD]",
         ("[2-6]" + _before(1, _NUM_EXCL)
          + r"(?:\d{12,18}|\d{3}(?P<sep>[ -])\d{4,6}(?:(?P=sep)\d{3,5}){1,3})" + _NUM_AFTER,),
         (rb"[2-6]\d{12}", rb"[2-6]\d{3}[ -]\d{4,6}[ -]\d{3}"), "0",
         lambda n: "0000000000000" in n or _CARD_GATE(n) is not None,
         check=_check_card, rank=3),
    _EMAIL,
    # Areas 000, 666 and 9xx, group 00 and serial 0000 are never issued.
    _pii("ssn", "[SSN]",
         ("[0-8]" + _before(1, _NUM_EXCL) + r"\d\d(?<!000)(?<!666)-(?!00)\d\d-(?!0000)\d{4}"
          + _NUM_AFTER,),
         (rb"\d{3}-\d\d-\d{4}",), "0", _has("000-00-0000"), rank=5),
    # North-American layouts with consistent separators, or any number written with a
    # leading "+".  A bare digit run is never a phone: those are ids and timestamps.
    _pii("phone", "[PHONE]",
         (r"\+" + _before(1, _NUM_EXCL)
          + r"(?:1[ .-]?(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}(?P<ps>[ .-])\d{3}(?P=ps)\d{4})"
            r"|[1-9]\d{0,2}(?P<is>[ .-]?)(?:\(\d{1,4}\)|\d{1,5})(?:(?P=is)\d{1,5}){1,5})"
          + _NUM_AFTER,
          r"\(" + _before(1, _NUM_EXCL) + r"\d{3}\) ?\d{3}[ .-]\d{4}" + _NUM_AFTER,
          r"\d" + _before(1, _NUM_EXCL)
          + r"(?:(?<=1)[ .-]?(?:\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}(?P<pt>[ .-])\d{3}(?P=pt)\d{4})"
            r"|\d\d(?P<qs>[ .-])\d{3}(?P=qs)\d{4})"
          + _NUM_AFTER),
         (rb"\d{3}[ .-]\d{3}[ .-]\d{4}", rb"\(\d{3}\) ?\d{3}[ .-]\d{4}",
          rb"\+[1-9][0-9 .()-]{7}"), "0",
         lambda n: "+0" in n or "(000)" in n or _PHONE_GATE(n) is not None,
         check=_check_phone, rank=6),
    _pii("ipv4", "[IP]",
         (r"\d" + _before(1, _NUM_EXCL) + r"\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}" + _NUM_AFTER,),
         (rb"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",), "0",
         lambda n: "0." in n and _IP_GATE(n) is not None, check=_check_ipv4, rank=7),
)


def _inj(name: str, alternatives: tuple[tuple[str, str], ...],
         gate: Callable[[str], bool]) -> _Pattern:
    """An injection phrase from (first word, rest) alternatives, written in lower case.

    Each alternative is its own regex, led by its first word so that ``re`` searches for
    that literal; the word boundary in front of it is checked after it.  The hyperscan
    trigger is the same phrase without that boundary (and a caseless flag).
    """
    py = tuple(w + _before(len(w), r"\w") + rest for w, rest in alternatives)
    hs = tuple(f"{w}{rest}".encode() for w, rest in alternatives)
    return _Pattern(
        name, "injection", "", tuple(re.compile(r, re.ASCII) for r in py), hs, gate, "",
        folded=tuple(re.compile(r, re.ASCII | re.IGNORECASE) for r in py),
        source="(?i:" + "|".join(f"(?:{r})" for r in py) + ")",
    )


_W = _WS
_DET = rf"(?:(?:all|the|any|every|your|my|of|these|those){_W}){{0,3}}"
_REVEAL = (rf"{_W}(?:me{_W})?(?:your|the){_W}(?:(?:full|entire|complete|original|initial"
           rf"|hidden|secret|exact|system){_W}){{0,2}}(?:prompt|instructions)\b")
_NO_LIMITS = (rf"{_W}(?:(?:as{_W}if|like|that){_W})?you{_W}(?:have|had|are|were){_W}"
              rf"(?:no|free{_W}(?:of|from)|without(?:{_W}any)?){_W}(?:\w+{_W})?"
              rf"(?:restrictions|rules|limits|limitations|filters|guidelines|constraints"
              rf"|boundaries)\b")
_MODE = rf"{_W}(?:developer|dan|god|jailbreak){_W}mode\b"

# Looked for in model inputs only, and never redacted: the lesson's "ignore previous",
# "disregard instructions" and "system prompt", and the usual variants.
_INJECTION_PATTERNS: tuple[_Pattern, ...] = (
    _inj("ignore_previous", (
        ("ignore", rf"{_W}(?:{_DET}(?:previous|prior|above|earlier|preceding)(?:{_W}"
                   rf"(?:instructions?|prompts?|rules|guidelines|directions|messages?"
                   rf"|context))?\b|(?:all|any|your){_W}(?:\w+{_W})?(?:instructions|rules"
                   rf"|guidelines)\b)"),
    ), _has("ignore")),
    _inj("disregard_instructions", (
        ("disregard", rf"{_W}(?:(?:all|the|any|your|my|previous|prior|above|earlier|these"
                      rf"|those|of|system){_W}){{0,4}}(?:instructions?|prompts?|rules"
                      rf"|guidelines|directions|above|previous)\b"),
    ), _has("disregard")),
    _inj("forget_instructions", (
        ("forget", rf"{_W}(?:(?:all|your|my|the|any|previous|prior|above|earlier|everything"
                   rf"|about|of){_W}){{0,4}}(?:instructions?|prompts?|rules|guidelines"
                   rf"|training|programming)\b"),
    ), _has("forget")),
    _inj("reveal_prompt", tuple((verb, _REVEAL) for verb in (
        "reveal", "print", "show", "display", "output", "repeat", "leak", "dump", "expose",
        "tell")),
        lambda n: ("prompt" in n or "instructions" in n) and _REVEAL_GATE(n) is not None),
    _inj("system_prompt", (("system", rf"{_W}prompts?\b"),),
         _search(r"system(?:\s|\\[nrt])+prompt")),
    _inj("role_override", (
        ("you", rf"{_W}are{_W}now{_W}(?:dan\b|in{_W}(?:\w+{_W})?mode\b|(?:an?{_W})?"
                rf"(?:unrestricted|unfiltered|uncensored|jailbroken|evil)\b)"),
        ("enable", _MODE), ("activate", _MODE), ("enter", _MODE),
    ), lambda n: _NOW_GATE(n) is not None or ("mode" in n and _MODE_GATE(n) is not None)),
    _inj("no_restrictions", tuple((verb, _NO_LIMITS) for verb in (
        "act", "behave", "respond", "answer", "pretend", "imagine")),
        _search(r"you(?:\s|\\[nrt])+(?:have|had|are|were)(?:\s|\\[nrt])+(?:no|free|without)")),
    _inj("jailbreak", (("jailbr", r"(?:eak|oken)(?:s|ing|ed)?\b"),), _has("jailbr")),
    _inj("do_anything_now", (("do", rf"{_W}anything{_W}now\b"),),
         _search(r"anything(?:\s|\\[nrt])+now")),
)

_ALL: tuple[_Pattern, ...] = _PII_PATTERNS + _INJECTION_PATTERNS
_N_PII = len(_PII_PATTERNS)

#: Every pattern name -> (kind, redaction token, "" for injection).
PATTERNS: dict[str, tuple[str, str]] = {p.name: (p.kind, p.token) for p in _ALL}
if tuple(p.name for p in _PII_PATTERNS) != PII_KINDS:  # the command line names them
    raise AssertionError("agenttop.store.redaction.PII_KINDS is not the PII patterns")

# bytes.translate table for the re engine's triggers: ASCII lower-case, digits -> "0".
_NORM = bytes(
    ord("0") if 48 <= b <= 57 else b + 32 if 65 <= b <= 90 else b for b in range(256)
)
# Excerpts are single-line: C0/C1 controls and Unicode line breaks become spaces.
_CTRL = {**{i: " " for i in range(32)}, **{i: " " for i in range(127, 160)},
         0x2028: " ", 0x2029: " "}


@dataclass(frozen=True, slots=True)
class Hit:
    """One finding.  Offsets index the original text; the excerpt is already redacted."""

    kind: str  # "pii" | "injection"
    pattern: str  # e.g. "ssn", "card", "email", "aws_key", "ignore_previous"
    start: int
    end: int
    excerpt: str
    # The PII as found (never stored: only a keyed digest of it, to tell an echo of a
    # user's input from PII a model produced); "" for injection.
    value: str = ""


def hyperscan_available() -> bool:
    """Whether the hyperscan fast path can be used in this environment."""
    return _hs is not None


# -- trigger engines: text -> indices into _ALL of the patterns to run ------------------

Fire = Callable[[str, bool], list[int]]


def _hs_expressions(with_injection: bool) -> tuple[list[bytes], list[int], list[int]]:
    exprs: list[bytes] = []
    ids: list[int] = []
    flags: list[int] = []
    for i, p in enumerate(_ALL if with_injection else _PII_PATTERNS):
        caseless = _hs.HS_FLAG_CASELESS if p.kind == "injection" or p.folded else 0
        for e in p.hs:
            exprs.append(e)
            ids.append(i)
            flags.append(_hs.HS_FLAG_SINGLEMATCH | caseless)
    return exprs, ids, flags


# Hyperscan scratch space is per thread and the binding releases the GIL while scanning,
# so each thread compiles its own databases (each owns its scratch).  Two databases: the
# caseless injection phrases halve throughput, and only model inputs need them.
_hs_local = threading.local()


def _hs_databases() -> tuple[object, object]:
    dbs = getattr(_hs_local, "dbs", None)
    if dbs is None:
        made = []
        for with_injection in (False, True):
            exprs, ids, flags = _hs_expressions(with_injection)
            db = _hs.Database()
            db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
            made.append(db)
        dbs = _hs_local.dbs = tuple(made)
    return dbs


def _hs_collect(pid: int, _start: int, _end: int, _flags: int, fired: list[int]) -> None:
    fired.append(pid)


def _fire_hyperscan(text: str, check_injection: bool) -> list[int]:
    # The common case costs ~0.6 us, most of it the binding's call overhead, so this
    # avoids helper calls and passes arguments positionally (keywords double the cost).
    try:
        data = text.encode()
    except UnicodeEncodeError:  # lone surrogates; they can never be part of a match
        data = text.encode("utf-8", "surrogatepass")
    fired: list[int] = []
    (getattr(_hs_local, "dbs", None) or _hs_databases())[check_injection].scan(
        data, _hs_collect, 0, fired)
    if len(fired) > 1:  # a pattern with several triggers can be reported once for each
        fired = list(dict.fromkeys(fired))
    return fired


def _re_plan(patterns: tuple[_Pattern, ...]) -> list[tuple[str, list[tuple[int, Callable]]]]:
    groups: dict[str, list[tuple[int, Callable]]] = {}
    for i, p in enumerate(patterns):
        groups.setdefault(p.pre, []).append((i, p.gate))
    return list(groups.items())


# Gates grouped by their ``pre`` character: most strings lack digits, "@", "-" or "_", and
# one memchr then skips every gate of the group.
_RE_PLAN = (_re_plan(_PII_PATTERNS), _re_plan(_ALL))


def _fire_re(text: str, check_injection: bool) -> list[int]:
    # str, not bytes: ``in`` on short bytes costs ~0.2 us, on str ~0.03 us.
    n = text.encode("utf-8", "surrogatepass").translate(_NORM).decode("latin-1")
    fired: list[int] = []
    for pre, gates in _RE_PLAN[check_injection]:
        if not pre or pre in n:
            for i, gate in gates:
                if gate(n):
                    fired.append(i)
    return fired


def _fire_all(text: str, check_injection: bool) -> list[int]:
    return list(range(len(_ALL) if check_injection else _N_PII))


_ENGINES: dict[str, Fire] = {
    "hyperscan": _fire_hyperscan,
    "re": _fire_re,
    "exhaustive": _fire_all,
}

# -- finding, overlap resolution, redaction, excerpts -----------------------------------

_Cand = tuple[int, int, _Pattern]


def _find(text: str, low: str | None, p: _Pattern, out: list[_Cand]) -> None:
    if p.finder is not None:
        out.extend((s, e, p) for s, e in p.finder(text))
        return
    if not p.folded:
        subject, regexes = text, p.regexes
    elif low is not None:
        subject, regexes = low, p.regexes
    else:
        subject, regexes = text, p.folded
    check = p.check
    for rx in regexes:
        search = rx.search
        pos = 0
        while (m := search(subject, pos)) is not None:
            span = m.span() if check is None else check(m)
            if span is None:
                # Rejected (e.g. Luhn): a valid hit may still start inside this candidate.
                pos = m.start() + 1
                continue
            out.append((span[0], span[1], p))
            pos = span[1]


def _resolve(cands: list[_Cand]) -> list[_Cand]:
    """Drop hits overlapping a longer (or equally long, more specific) one."""
    if len(cands) > 1:
        # Fully ordered (the name breaks ties), so the result does not depend on the order
        # in which an engine reported its triggers.
        cands.sort(key=lambda c: (c[0] - c[1], c[2].rank, c[0], c[2].name))
        # Kept hits never overlap, so one sorted list of starts (and their ends) answers
        # "does this overlap a kept hit" from the two neighbours; thousands of hits (an
        # adversarial value) stay cheap.
        starts: list[int] = []
        ends: list[int] = []
        kept: list[_Cand] = []
        for c in cands:
            s, e = c[0], c[1]
            i = bisect_right(starts, s)
            if (i and ends[i - 1] > s) or (i < len(starts) and starts[i] < e):
                continue
            starts.insert(i, s)
            ends.insert(i, e)
            kept.append(c)
        cands = kept
    cands.sort(key=lambda c: c[0])
    return cands


def _redact(text: str, pii: list[_Cand]) -> tuple[str, list[Span]]:
    """Replace each PII span by its token; also return each token's span in the result."""
    if not pii:
        return text, []
    parts: list[str] = []
    where: list[Span] = []
    last = 0
    size = 0
    for s, e, p in pii:
        parts.append(text[last:s])
        size += s - last
        parts.append(p.token)
        where.append((size, size + len(p.token)))
        size += len(p.token)
        last = e
    parts.append(text[last:])
    return "".join(parts), where


def _shift(x: int, pii: list[_Cand], is_end: bool) -> int:
    """Map an offset in the original text to the redacted text."""
    delta = 0
    for s, e, p in pii:
        if x <= s:
            break
        if x < e:  # inside a replaced span: snap to the edge of its token
            return s + delta + (len(p.token) if is_end else 0)
        delta += len(p.token) - (e - s)
    return x + delta


def _excerpt(redacted: str, start: int, end: int) -> str:
    shown = redacted[start:min(end, start + _MAX_SHOWN)]
    text = redacted[max(0, start - _CONTEXT):start] + shown + redacted[end:end + _CONTEXT]
    return text.translate(_CTRL)


class Scanner:
    """Finds PII and injection phrases in text, and replaces PII with tokens.

    ``engine`` is "auto" (hyperscan when importable, else "re"), "hyperscan", "re", or
    "exhaustive" (no triggers: every finder runs; the reference the others must equal).
    ``ignore``: PII patterns never reported or replaced (see ``PII_KINDS``).
    Safe to share between threads: hyperscan state is per thread, compiled lazily (~0.1 s),
    but see the module docstring before using hyperscan beside other busy threads.
    """

    __slots__ = ("redact", "engine", "ignore", "_fire")

    def __init__(self, *, redact: bool = True, engine: str = "auto",
                 ignore: frozenset[str] = frozenset()) -> None:
        unknown = ignore - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds: {', '.join(sorted(unknown))}")
        self.ignore = ignore
        if engine == "auto":
            engine = "hyperscan" if _hs is not None else "re"
        if engine not in _ENGINES:
            raise ValueError(f"unknown scan engine {engine!r}")
        if engine == "hyperscan":
            if _hs is None:
                raise RuntimeError("hyperscan is not installed")
            _hs_databases()  # compile now: fail fast, and keep the cost off the first span
        self.redact = redact
        self.engine = engine
        self._fire = _ENGINES[engine]

    def scan_text(self, text: str, *, check_injection: bool,
                  skip: frozenset[str] = frozenset()) -> tuple[str, list[Hit]]:
        """Return (text with PII replaced by tokens if redact else text unchanged, hits).

        The returned text is the same object as ``text`` when nothing was replaced.
        Injection phrases are looked for only when ``check_injection`` (model inputs);
        PII patterns named in ``skip`` are not reported or replaced. Hits are ordered by
        start offset.
        """
        if len(text) < _MIN_LEN:
            return text, []
        fired = self._fire(text, check_injection)
        if not fired:
            return text, []
        # Lower-casing ASCII keeps offsets, and lets case-insensitive phrases be searched
        # as literals.  (Non-ASCII text can change length when lower-cased.)
        low = text.lower() if text.isascii() else None
        pii: list[_Cand] = []
        inj: list[_Cand] = []
        for i in fired:
            _find(text, low, _ALL[i], pii if i < _N_PII else inj)
        skip = skip | self.ignore if self.ignore else skip
        if skip:
            pii = [c for c in pii if c[2].name not in skip]
        if not pii and not inj:
            return text, []
        pii = _resolve(pii)
        inj = _resolve(inj)
        redacted, where = _redact(text, pii)
        hits = [Hit("pii", p.name, s, e, _excerpt(redacted, *where[k]), text[s:e])
                for k, (s, e, p) in enumerate(pii)]
        for s, e, p in inj:
            hits.append(Hit("injection", p.name, s, e,
                            _excerpt(redacted, _shift(s, pii, False), _shift(e, pii, True))))
        if inj and pii:
            hits.sort(key=lambda h: (h.start, h.end))
        return (redacted if self.redact else text), hits

    def scan_value(self, value: object, *, check_injection: bool,
                   skip: frozenset[str] = frozenset()) -> tuple[object, list[tuple[str, Hit]]]:
        """Scan every string in a JSON-like value (dict values, not keys).

        Returns (value with redacted strings, [(path, hit)]).  The value is the same object
        when nothing changed; containers are copied only along changed paths.  Paths look
        like ``messages[0].content``, relative to ``value`` ("" for a top-level string).
        ``skip``: as for ``scan_text``, for a string value.
        """
        if isinstance(value, str):  # most attribute values: skip the walk
            new, found = self.scan_text(value, check_injection=check_injection, skip=skip)
            return new, [("", h) for h in found] if found else []
        hits: list[tuple[str, Hit]] = []
        return self._walk(value, "", check_injection, hits), hits

    def _walk(self, v: object, path: str, ci: bool, hits: list[tuple[str, Hit]]) -> object:
        if isinstance(v, str):
            new, found = self.scan_text(v, check_injection=ci)
            if found:
                hits.extend((path, h) for h in found)
            return new
        if isinstance(v, dict):
            out: dict | None = None
            for k, x in v.items():
                nx = self._walk(x, f"{path}.{k}" if path else str(k), ci, hits)
                if nx is not x:
                    if out is None:
                        out = dict(v)
                    out[k] = nx
            return v if out is None else out
        if isinstance(v, list | tuple):
            changed: list | None = None
            for i, x in enumerate(v):
                nx = self._walk(x, f"{path}[{i}]", ci, hits)
                if nx is not x:
                    if changed is None:
                        changed = list(v)
                    changed[i] = nx
            if changed is None:
                return v
            return changed if isinstance(v, list) else tuple(changed)
        return v


# -- direction of an attribute ------------------------------------------------------------
# Attribute keys (and log event names) whose values are model inputs or outputs.  Matched
# as the whole key or a dotted prefix of it ("gen_ai.prompt.0.content"), never a bare
# string prefix, so "gen_ai.prompt_tokens" is neither.
_INPUT_ROOTS = (
    "gen_ai.input.messages", "gen_ai.prompt", "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments", "gen_ai.user.message", "gen_ai.system.message",
    "gen_ai.tool.message", "gen_ai.content.prompt", "llm.input_messages", "llm.prompts",
    "llm.prompt_template", "input.value", "traceloop.entity.input", "gen_ai.task.input",
    "langfuse.observation.input", "ai.prompt", "ai.toolCall.args", "mlflow.spanInputs",
)
_OUTPUT_ROOTS = (
    "gen_ai.output.messages", "gen_ai.completion", "gen_ai.tool.call.result",
    "gen_ai.choice", "gen_ai.assistant.message", "gen_ai.content.completion",
    "llm.output_messages", "output.value", "traceloop.entity.output", "gen_ai.task.output",
    "langfuse.observation.output", "ai.response.text", "ai.response.object",
    "ai.response.toolCalls", "ai.toolCall.result", "mlflow.spanOutputs",
    "final_result",  # pydantic-ai's agent run
)
_INPUT_EXACT = frozenset(_INPUT_ROOTS)
_OUTPUT_EXACT = frozenset(_OUTPUT_ROOTS)
_INPUT_PREFIXES = tuple(r + "." for r in _INPUT_ROOTS)
_OUTPUT_PREFIXES = tuple(r + "." for r in _OUTPUT_ROOTS)


@lru_cache(maxsize=4096)
def direction_of(key: str) -> str:
    """'input' | 'output' | '' for an attribute key or log event name.

    Inputs (prompts, system instructions, tool-call arguments, user/system/tool message
    events) are what injection scanning applies to.
    """
    if key in _INPUT_EXACT or key.startswith(_INPUT_PREFIXES):
        return "input"
    if key in _OUTPUT_EXACT or key.startswith(_OUTPUT_PREFIXES):
        return "output"
    return ""
