"""Corral's log: a rotating file in the platform log directory, stderr, and an in-memory
buffer that the log panel shows.

Secrets never reach any of them: every handler carries a :class:`RedactingFilter` that
hides tokens, keys and passwords in the message, its ``%`` arguments, the exception
traceback and the stack, in the usual shapes (``Authorization: Bearer ...``,
``api_key=...`` in a query string, ``"token": "..."`` in JSON, ``sk-...`` keys, a
password in ``https://user:password@host``), and every exact value given to
:func:`register_secret` (the secret store registers each secret it reads or stores).

If the log directory cannot be created or written (a read-only disk), Corral logs to
stderr and the panel only, and :attr:`LogSetup.problem` says so in a sentence.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from app.core.errors import InvalidInput
from app.core.settings import default_log_dir as default_log_dir  # where the files go

LOG_FILE = "corral.log"
MAX_BYTES = 2 * 1024 * 1024
BACKUPS = 5
BUFFER_LINES = 5000
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"

#: The levels a user can choose, by name.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

#: Libraries that log every request at INFO: kept at WARNING whatever the level.
QUIET_LOGGERS = ("httpx", "httpcore", "httpx2")

#: Registered values shorter than this are not hidden (they would hide ordinary words).
MIN_SECRET_LENGTH = 4


def parse_level(level: str) -> int:
    """The logging level for a name ("info", "Warning", ...); InvalidInput if unknown."""
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in (*LEVELS, "CRITICAL"):
        raise InvalidInput(f"{level!r} is not a log level: choose Debug, Info, Warning or Error.")
    return logging.getLevelNamesMapping()[name]


# -- redaction -----------------------------------------------------------------------------

_KEY = (
    r"[A-Za-z0-9_.-]*(?:token|api[_-]?key|apikey|secret|password|passwd|passphrase"
    r"|authorization|auth|cookie|credentials?)"
)
_NOT_REDACTED = r"(?!\[redacted\])"
_SCHEMES = r"(?:Bearer|Basic|Token|Digest|Negotiate)"
_SCHEME = rf"{_SCHEMES}[ \t]+"
_BARE_VALUE = r"[^\s&'\",;)\]}>]+"

# "user:password@" in a URL.
_URL_CREDENTIALS = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s/@:]*):([^\s/@]+)@")
# "token": "value", 'Authorization': 'Bearer x', ('X-Api-Key', 'value'), "secret" = 'x'.
_QUOTED_PAIR = re.compile(
    rf"""(?ix)
    (?P<head>(?P<q>["']){_KEY}(?P=q)\s*[:=,]\s*b?)
    (?P<vq>["'])(?P<value>(?:\\.|(?!(?P=vq)).)*)(?P=vq)
    """
)
# token=value, api_key=value in a query string, password: value, Authorization: Basic x.
_BARE_PAIR = re.compile(
    rf"""(?ix)
    (?P<head>(?<![A-Za-z0-9_.-]){_KEY}(?:[ \t]*[:=][ \t]*))
    (?:
        (?P<vq>["'])(?P<quoted>(?:\\.|(?!(?P=vq)).)*)(?P=vq)
      | (?P<scheme>{_SCHEME})?{_NOT_REDACTED}(?P<value>{_BARE_VALUE})
    )
    """
)
# key=value in a query string (too common a word to hide everywhere).
_QUERY_KEY = re.compile(rf"(?i)([?&](?:key|sig|signature)=){_NOT_REDACTED}([^\s&'\"#]+)")
# Bearer <token> anywhere.
_BEARER = re.compile(rf"(?i)(?<![A-Za-z0-9_-])(bearer[ \t]+){_NOT_REDACTED}([A-Za-z0-9._~+/-]+=*)")
# Keys with a well-known prefix: OpenAI / Anthropic sk-, Hugging Face, GitHub, GitLab,
# Slack, Google, and JSON web tokens.
_PREFIXED = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(sk-|hf_|gh[pousr]_|github_pat_|glpat-|xox[abprs]-|AIza)"
    r"[A-Za-z0-9_-]{16,}"
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}"
)


def _quoted(match: re.Match[str]) -> str:
    return f"{match['head']}{match['vq']}{REDACTED}{match['vq']}"


def _bare(match: re.Match[str]) -> str:
    if match["vq"]:
        return f"{match['head']}{match['vq']}{REDACTED}{match['vq']}"
    return f"{match['head']}{match['scheme'] or ''}{REDACTED}"


def _prefixed(match: re.Match[str]) -> str:
    return f"{match[1] or ''}{REDACTED}"


class SecretRegistry:
    """Exact secret values to hide wherever they appear in a log line (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        """Hide ``value`` from now on (with its URL-encoded form, the credential of a
        "Bearer x" header value, and the token fields of an OAuth JSON document)."""
        found = set(_variants(value))
        with self._lock:
            if found <= self._values:
                return
            self._values |= found
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def forget(self) -> None:
        """Stop hiding the values registered so far."""
        with self._lock:
            self._values.clear()
            self._pattern = None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def __len__(self) -> int:
        return len(self._values)


def _variants(value: str) -> Iterable[str]:
    for candidate in _candidates(value):
        candidate = candidate.strip()
        if len(candidate) < MIN_SECRET_LENGTH or candidate in REDACTED:
            continue
        yield candidate
        encoded = quote(candidate, safe="")
        if encoded != candidate:
            yield encoded


def _candidates(value: str) -> Iterable[str]:
    yield value
    scheme, _, credential = value.strip().partition(" ")
    if credential and re.fullmatch(_SCHEMES, scheme, re.IGNORECASE):
        yield credential
    if value.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            yield from _json_secrets(json.loads(value))


def _json_secrets(data: object, sensitive: bool = False) -> Iterable[str]:
    if isinstance(data, str) and sensitive:
        yield data
    elif isinstance(data, dict):
        for key, item in data.items():
            hit = sensitive or bool(re.fullmatch(_KEY, str(key), re.IGNORECASE))
            yield from _json_secrets(item, hit)
    elif isinstance(data, list):
        for item in data:
            yield from _json_secrets(item, sensitive)


_registered = SecretRegistry()


def register_secret(value: str | None) -> None:
    """Never write ``value`` to the log (nor its URL-encoded form). Values shorter than
    :data:`MIN_SECRET_LENGTH` characters are ignored."""
    if value:
        _registered.register(value)


def forget_registered_secrets() -> None:
    """Stop hiding the values given to :func:`register_secret` so far."""
    _registered.forget()


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``[redacted]``."""
    text = _registered.redact(text)
    text = _URL_CREDENTIALS.sub(rf"\1:{REDACTED}@", text)
    text = _QUOTED_PAIR.sub(_quoted, text)
    text = _BARE_PAIR.sub(_bare, text)
    text = _QUERY_KEY.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    return _PREFIXED.sub(_prefixed, text)


class RedactingFilter(logging.Filter):
    """Replaces a record's message, arguments, traceback and stack with redacted text.

    The record is changed in place (once), so every handler after this one sees the
    redacted version too. Nothing is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "corral_redacted", False):
            return True
        # Each text argument on its own first: once formatted with %r its quotes are
        # escaped, and a secret inside no longer looks like one.
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep what can be shown
            message = f"{record.msg} (the arguments of this message could not be formatted)"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.corral_redacted = True
        return True


# -- handlers ------------------------------------------------------------------------------


class _CorralHandler:
    """Marks the handlers :func:`setup_logging` installs, so that a second call replaces
    them instead of adding more."""

    corral_handler = True


class _FileHandler(_CorralHandler, logging.handlers.RotatingFileHandler):
    """The rotating log file (always appended to); new files are created readable by the
    user only."""

    def _open(self) -> io.TextIOWrapper:
        def opener(path: str, flags: int) -> int:
            return os.open(path, flags, 0o600)

        stream = open(  # noqa: SIM115 (the handler owns and closes the stream)
            self.baseFilename, "a", encoding=self.encoding, errors=self.errors, opener=opener
        )
        with contextlib.suppress(OSError):  # a file made by an older run may be wider
            os.chmod(self.baseFilename, 0o600)
        return stream


class _StderrHandler(_CorralHandler, logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (nothing where there is none, as in
    a windowed app on Windows)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


@dataclass(frozen=True)
class LogLine:
    """One formatted (already redacted) log record, as the log panel shows it.

    ``text`` may span several lines (a traceback). ``seq`` grows by one per record.
    """

    seq: int
    level: int
    level_name: str
    logger: str
    created: float
    text: str


class LogBuffer(_CorralHandler, logging.Handler):
    """The last ``capacity`` log records, formatted and redacted, for the log panel.

    Records may come from any thread; nothing is called back. A reader polls
    :meth:`records_since` with the last ``seq`` it has seen.
    """

    def __init__(self, capacity: int = BUFFER_LINES) -> None:
        super().__init__()
        self.capacity = capacity
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._lines_lock = threading.Lock()
        self._seq = 0

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest record (0 before the first)."""
        return self._seq

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            with self._lines_lock:
                self._seq += 1
                self._lines.append(
                    LogLine(
                        self._seq,
                        record.levelno,
                        record.levelname,
                        record.name,
                        record.created,
                        text,
                    )
                )
        except Exception:
            self.handleError(record)

    def records_since(self, seq: int) -> list[LogLine]:
        """The records newer than ``seq``, oldest first (those still held)."""
        with self._lines_lock:
            if seq >= self._seq or not self._lines:
                return []
            skip = max(0, seq - self._lines[0].seq + 1)
            return list(itertools.islice(self._lines, skip, None))


# -- set-up --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogSetup:
    """Where the log goes, as set up by :func:`setup_logging`.

    Attributes:
        path: the log file (None when it could not be opened).
        directory: the folder of the log files ("Open log folder").
        problem: why there is no log file, in a sentence for the user; None if there is.
        buffer: the recent records, for the log panel.
    """

    path: Path | None
    directory: Path
    problem: str | None
    buffer: LogBuffer
    handlers: tuple[logging.Handler, ...] = field(default=(), repr=False)

    @property
    def level(self) -> str:
        """The name of the level now in force ("INFO", ...)."""
        return str(logging.getLevelName(logging.getLogger().level))

    def set_level(self, level: str) -> None:
        """Log records of ``level`` and above from now on (the log file, stderr and the
        panel). An unknown name raises InvalidInput and changes nothing."""
        number = parse_level(level)
        logging.getLogger().setLevel(number)
        for handler in self.handlers:
            handler.setLevel(number)


def _open_file(directory: Path, max_bytes: int, backups: int) -> logging.Handler:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return _FileHandler(
        directory / LOG_FILE, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )


def setup_logging(
    level: str = "INFO",
    log_dir: Path | None = None,
    *,
    stderr: bool = True,
    buffer: LogBuffer | None = None,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
) -> LogSetup:
    """Send the root logger's records to ``corral.log`` in ``log_dir`` (default
    :func:`default_log_dir`; rotated at ``max_bytes``, ``backups`` old files kept), to
    stderr (unless ``stderr`` is False) and to a :class:`LogBuffer`, all redacted.

    Calling it again replaces the handlers of the first call (the buffer is kept unless
    another is given); handlers installed by others are left alone. An unknown ``level``
    falls back to INFO (with a warning in the log). Never raises for an unusable
    directory: :attr:`LogSetup.problem` says what happened.
    """
    root = logging.getLogger()
    previous = [h for h in root.handlers if getattr(h, "corral_handler", False)]
    if buffer is None:
        buffer = next((h for h in previous if isinstance(h, LogBuffer)), None) or LogBuffer()
    for handler in previous:
        root.removeHandler(handler)
        if handler is not buffer:
            handler.close()

    directory = log_dir if log_dir is not None else default_log_dir()
    handlers: list[logging.Handler] = []
    path: Path | None = None
    problem: str | None = None
    try:
        file_handler = _open_file(directory, max_bytes, backups)
    except (OSError, ValueError) as exc:  # ValueError: a path no file system takes
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        problem = (
            f"Corral cannot write its log file in {directory} ({reason}), so this session's "
            "log is shown only in the log panel and is lost when Corral closes."
        )
    else:
        handlers.append(file_handler)
        path = directory / LOG_FILE
    if stderr:
        handlers.append(_StderrHandler())
    handlers.append(buffer)

    redacting = RedactingFilter()
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        for old in list(handler.filters):
            if isinstance(old, RedactingFilter):
                handler.removeFilter(old)
        handler.addFilter(redacting)
        root.addHandler(handler)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    setup = LogSetup(path, directory, problem, buffer, tuple(handlers))
    try:
        setup.set_level(level)
    except InvalidInput:
        setup.set_level("INFO")
        logging.getLogger(__name__).warning("Unknown log level %r; logging at INFO.", level)
    if problem:
        logging.getLogger(__name__).warning("%s", problem)
    return setup
