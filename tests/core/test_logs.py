"""The log: a rotating private file, stderr and a buffer, with every secret hidden."""

from __future__ import annotations

import json
import logging
import os
import string
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from keyring.backends import fail

from app.core.errors import InvalidInput, SecretNotStored
from app.core.logs import (
    LOG_FILE,
    MIN_SECRET_LENGTH,
    REDACTED,
    LogBuffer,
    LogSetup,
    default_log_dir,
    forget_registered_secrets,
    register_secret,
    setup_logging,
)
from app.core.secrets import SecretStore
from tests.support.memory_keyring import MemoryKeyring

pytestmark = pytest.mark.usefixtures("restore_logging")


log = logging.getLogger("corral.test")


def file_text(setup: LogSetup) -> str:
    """Everything written to the log files so far (the current one and the rotated ones)."""
    for handler in setup.handlers:
        handler.flush()
    return "".join(read(p) for p in sorted(setup.directory.glob(LOG_FILE + "*")))


def current_file(setup: LogSetup) -> str:
    """The text of the log file being written (not the rotated ones)."""
    assert setup.path is not None
    for handler in setup.handlers:
        handler.flush()
    return read(setup.path)


def read(path: Path) -> str:
    """A file's text exactly as written (no newline translation)."""
    with path.open(encoding="utf-8", newline="") as f:
        return f.read()


def buffer_text(setup: LogSetup) -> str:
    return "\n".join(line.text for line in setup.buffer.records_since(0))


# -- files ---------------------------------------------------------------------------------


def test_default_log_dir_is_the_platform_log_folder(tmp_path: Path) -> None:
    # tests/conftest.py points XDG_STATE_HOME into tmp_path; Linux keeps logs under it
    if sys.platform.startswith("linux"):
        assert default_log_dir() == tmp_path / "xdg" / "xdg_state_home" / "corral" / "log"
    assert default_log_dir().parts[-2:] in {("corral", "log"), ("corral", "Logs"), ("corral",)}


def test_records_reach_the_file_and_the_buffer(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path / "logs", stderr=False)
    log.info("host %s answered in %.1f ms", "Fake box", 12.5)

    assert setup.problem is None
    assert setup.path == tmp_path / "logs" / LOG_FILE
    assert "INFO corral.test: host Fake box answered in 12.5 ms" in file_text(setup)
    assert "host Fake box answered in 12.5 ms" in buffer_text(setup)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_log_file_is_readable_by_the_user_only(tmp_path: Path) -> None:
    old = tmp_path / LOG_FILE
    old.write_text("an earlier run\n")
    old.chmod(0o644)
    setup_logging("INFO", tmp_path, stderr=False, max_bytes=300, backups=2)
    assert old.stat().st_mode & 0o777 == 0o600  # a file of an earlier run is closed up
    assert old.read_text("utf-8") == "an earlier run\n"
    for i in range(20):
        log.warning("line %d of a long enough message to fill the small log file", i)

    files = sorted(tmp_path.glob(LOG_FILE + "*"))
    assert len(files) == 3
    for path in files:  # and so is every file made by rotation
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_the_file_rotates_at_the_size_limit(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False, max_bytes=2000, backups=2)
    for i in range(200):
        log.info("record %03d %s", i, "x" * 60)
    file_text(setup)

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    for name in names:
        assert (tmp_path / name).stat().st_size <= 2000
    assert "record 199" in (tmp_path / LOG_FILE).read_text("utf-8")
    assert "record 000" not in file_text(setup)  # the oldest went with the third rotation


def test_an_unwritable_folder_gives_a_problem_and_logs_to_stderr_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    directory = blocker / "logs"  # cannot be created, even by root

    setup = setup_logging("INFO", directory)
    log.info("still logged somewhere")

    assert setup.path is None
    assert setup.directory == directory
    assert setup.problem is not None
    assert str(directory) in setup.problem
    assert "log panel" in setup.problem
    err = capsys.readouterr().err
    assert "still logged somewhere" in err
    assert setup.problem in err  # said once in the log itself
    assert "still logged somewhere" in buffer_text(setup)
    assert not directory.exists()


def test_a_path_no_file_system_takes_gives_a_problem(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path / "bad\0name", stderr=False)
    log.warning("kept in the buffer")
    assert setup.path is None
    assert setup.problem is not None
    assert "null byte" in setup.problem
    assert "kept in the buffer" in buffer_text(setup)


def test_a_folder_in_place_of_the_log_file_gives_a_problem(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).mkdir()
    setup = setup_logging("INFO", tmp_path, stderr=False)
    log.warning("kept in the buffer")
    assert setup.path is None
    assert setup.problem is not None
    assert "kept in the buffer" in buffer_text(setup)


# -- levels --------------------------------------------------------------------------------


def test_set_level_changes_what_is_written(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)
    log.debug("debug one")
    log.info("info one")
    setup.set_level("debug")
    log.debug("debug two")
    setup.set_level("Warning")
    log.info("info two")
    log.warning("warning two")

    written = file_text(setup)
    assert "debug one" not in written
    assert "info one" in written
    assert "debug two" in written
    assert "info two" not in written
    assert "warning two" in written
    assert "info two" not in buffer_text(setup)
    assert setup.level == "WARNING"


def test_an_unknown_level_changes_nothing(tmp_path: Path) -> None:
    setup = setup_logging("WARNING", tmp_path, stderr=False)
    with pytest.raises(InvalidInput, match="not a log level"):
        setup.set_level("loud")
    assert setup.level == "WARNING"
    log.info("quiet still")
    assert "quiet still" not in file_text(setup)


def test_an_unknown_level_at_start_logs_at_info(tmp_path: Path) -> None:
    setup = setup_logging("chatty", tmp_path, stderr=False)
    log.info("info line")
    assert setup.level == "INFO"
    written = file_text(setup)
    assert "Unknown log level 'chatty'" in written
    assert "info line" in written


def test_http_libraries_log_warnings_only(tmp_path: Path) -> None:
    setup = setup_logging("DEBUG", tmp_path, stderr=False)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:11434/api/tags")
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("the server closed the stream")

    written = file_text(setup)
    assert "api/tags" not in written
    assert "connect_tcp" not in written
    assert "the server closed the stream" in written


def test_setting_up_twice_does_not_duplicate_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = setup_logging("INFO", tmp_path)
    second = setup_logging("INFO", tmp_path)
    log.info("exactly once")

    assert file_text(second).count("exactly once") == 1
    assert capsys.readouterr().err.count("exactly once") == 1
    assert buffer_text(second).count("exactly once") == 1
    assert second.buffer is first.buffer  # the panel on the first buffer keeps working
    ours = [h for h in logging.getLogger().handlers if getattr(h, "corral_handler", False)]
    assert len(ours) == 3


def test_setting_up_again_moves_the_file(tmp_path: Path) -> None:
    setup_logging("INFO", tmp_path / "one", stderr=False)
    log.info("to the first")
    second = setup_logging("INFO", tmp_path / "two", stderr=False)
    log.info("to the second")
    assert "to the second" in file_text(second)
    assert "to the first" not in file_text(second)
    assert "to the second" not in (tmp_path / "one" / LOG_FILE).read_text("utf-8")


# -- the buffer ----------------------------------------------------------------------------


def test_the_buffer_keeps_the_newest_records_with_growing_numbers() -> None:
    buffer = LogBuffer(capacity=3)
    buffer.setFormatter(logging.Formatter("%(message)s"))
    for i in range(5):
        buffer.handle(logging.LogRecord("t", logging.INFO, __file__, 1, f"r{i}", (), None))

    assert [(line.seq, line.text) for line in buffer.records_since(0)] == [
        (3, "r2"),
        (4, "r3"),
        (5, "r4"),
    ]
    assert [line.text for line in buffer.records_since(4)] == ["r4"]
    assert buffer.records_since(5) == []
    assert buffer.last_seq == 5


def test_the_buffer_takes_records_from_threads(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)

    def work(n: int) -> None:
        for i in range(200):
            log.info("thread %d record %d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()

    seqs = [line.seq for line in setup.buffer.records_since(0)]
    assert seqs == list(range(1, 801))
    assert file_text(setup).count(" record ") == 800


# -- secrets -------------------------------------------------------------------------------

SECRET = "s3cr3t-Value_9f8e7d6c5b4a"

#: Each form in which a secret may be logged, with the secret as {s}.
FORMS = [
    "Authorization: Bearer {s}",
    "sending headers {{'Authorization': 'Bearer {s}'}}",
    "proxy-authorization: Basic {s}",
    "the header was Bearer {s}",
    "GET http://127.0.0.1:8080/v1/models?api_key={s}&limit=5",
    "GET http://127.0.0.1:8080/v1/models?apikey={s}",
    "GET http://127.0.0.1:8080/cb?code=1&token={s}",
    "POST /oauth/token access_token={s}&refresh_token={s}x",
    "client_secret={s}",
    "password={s}; user=admin",
    '{{"access_token": "{s}", "token_type": "Bearer", "expires_in": 3600}}',
    '{{"refresh_token":"{s}"}}',
    '{{"client_secret": "{s}", "client_id": "corral"}}',
    '{{"env": {{"OPENAI_API_KEY": "{s}"}}}}',
    "HostConfig(headers=(('X-Api-Key', '{s}'),))",
    "password: {s}",
    "token = {s}",
    "key sk-{s}abcdefghij was refused",
    "key sk-proj-{s}abcdefghij was refused",
    "https://admin:{s}@127.0.0.1:8080/v1",
    "hf_{s}abcdefgh from the environment",
]
PREFIXED_SECRET = "A1b2C3d4E5f6G7h8I9j0"  # the sk-/hf_ forms want letters and digits only


def secret_for(form: str) -> str:
    return PREFIXED_SECRET if ("sk-{s}" in form or "hf_{s}" in form or "proj-" in form) else SECRET


@pytest.mark.parametrize("form", FORMS)
def test_no_secret_form_reaches_the_file_or_the_buffer(tmp_path: Path, form: str) -> None:
    setup = setup_logging("DEBUG", tmp_path, stderr=False)
    secret = secret_for(form)
    text = form.format(s=secret)
    log.info(text)
    log.debug("args: %s", text)
    log.warning("repr: %r", {"detail": text})

    for where in (file_text(setup), buffer_text(setup)):
        assert secret not in where
        assert where.count(REDACTED) >= 3


def test_secrets_in_tracebacks_and_chained_errors_are_hidden(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)

    def call() -> None:
        try:
            raise ConnectionError(f"http://u:{SECRET}@127.0.0.1:9/ refused")
        except ConnectionError as exc:
            raise RuntimeError(f"retry with Authorization: Bearer {SECRET} failed") from exc

    try:
        call()
    except RuntimeError:
        log.exception("request failed for %s", f"token={SECRET}")
    log.error("and stack", stack_info=True)

    for where in (file_text(setup), buffer_text(setup)):
        assert "Traceback (most recent call last)" in where
        assert "ConnectionError" in where
        assert "RuntimeError: retry with Authorization: Bearer [redacted] failed" in where
        assert SECRET not in where


def test_formats_that_do_not_fit_their_arguments_do_not_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = setup_logging("INFO", tmp_path)
    record = log.makeRecord(
        log.name, logging.INFO, __file__, 1, "two places %s %s", (f"password={SECRET}",), None
    )
    for handler in setup.handlers:  # as the root logger would (pytest's own handler refuses)
        handler.handle(record)
    written = file_text(setup)
    assert "two places %s %s (the arguments of this message could not be formatted)" in written
    assert SECRET not in written + buffer_text(setup) + capsys.readouterr().err


def test_stderr_gets_the_redacted_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", tmp_path)
    log.warning("Authorization: Bearer %s", SECRET)
    err = capsys.readouterr().err
    assert "Authorization: Bearer [redacted]" in err
    assert SECRET not in err


def test_ordinary_text_is_left_alone(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)
    plain = (
        "llama3.2:3b answered: max_tokens=512 prompt_tokens=12 token_type=bearer, "
        "42.1 tokens/s at http://127.0.0.1:11434/api/chat?stream=true (task-abcdefghijklmnopq)"
    )
    log.info(plain)
    assert plain in file_text(setup)


def test_registered_secrets_are_hidden_in_any_text(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)
    register_secret("correct horse battery")
    register_secret("Bearer plain-credential-42")
    register_secret("ab")  # too short to hide: ordinary text would suffer

    log.info("the user typed correct horse battery into a field")
    log.info("query ?q=correct%20horse%20battery")
    log.info("header value plain-credential-42 on its own")
    log.info("a b ab abc")

    written = file_text(setup)
    assert "correct horse battery" not in written
    assert "correct%20horse%20battery" not in written
    assert "plain-credential-42" not in written
    assert "a b ab abc" in written


def test_oauth_documents_register_their_tokens(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)
    register_secret(json.dumps({"access_token": "acc-1234567", "refresh_token": "ref-7654321"}))
    log.info("got acc-1234567 and then ref-7654321")
    written = file_text(setup)
    assert "acc-1234567" not in written
    assert "ref-7654321" not in written


def test_the_secret_store_registers_what_it_stores_and_reads(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)
    backend = MemoryKeyring()
    store = SecretStore(backend)
    store.set("host/h1/Authorization", "stored-token-11111")
    backend.store[("corral", "host/h2/Authorization")] = "from-an-earlier-run-22222"
    assert store.get("host/h2/Authorization") == "from-an-earlier-run-22222"
    session_only = SecretStore(fail.Keyring())
    with pytest.raises(SecretNotStored):
        session_only.set("host/h3/token", "session-only-33333")

    log.info("stored-token-11111 from-an-earlier-run-22222 session-only-33333")
    written = file_text(setup)
    for value in ("stored-token-11111", "from-an-earlier-run-22222", "session-only-33333"):
        assert value not in written


# -- property: random secrets in random text ----------------------------------------------

TOKEN_CHARS = string.ascii_letters + string.digits + "-._~"
KEY_NAMES = ["api_key", "apikey", "token", "access_token", "refresh_token", "client_secret",
             "password", "x-api-key", "Authorization", "id_token"]  # fmt: skip
# Text around the secret: anything but brackets, which the [redacted] marker is made of.
any_char = st.characters(exclude_characters="[]", codec="utf-8")  # no lone surrogates
noise = st.text(any_char, max_size=40)
tokens = st.text(st.sampled_from(TOKEN_CHARS), min_size=12, max_size=48)
alnum = st.text(st.sampled_from(string.ascii_letters + string.digits), min_size=20, max_size=48)


def _json_form(key: str, s: str) -> str:
    return json.dumps({"model": "llama3", key: s, "n": 1})


TEMPLATES: list[tuple[str, Callable[[str, str], str], st.SearchStrategy[str]]] = [
    ("authorization", lambda k, s: f"Authorization: Bearer {s}", tokens),
    ("bearer", lambda k, s: f"Bearer {s}", tokens),
    ("query", lambda k, s: f"GET http://127.0.0.1:1234/v1?a=1&{k}={s}&b=2", tokens),
    ("key=value", lambda k, s: f"{k}={s}", tokens),
    ("key: value", lambda k, s: f"{k}: {s}", tokens),
    ("json", _json_form, st.text(any_char, min_size=8)),
    ("dict repr", lambda k, s: repr({k: s}), tokens),
    ("sk key", lambda k, s: f"sk-{s}", alnum),
    ("url password", lambda k, s: f"https://user:{s}@127.0.0.1:8443/path", tokens),
]


@st.composite
def secret_lines(draw: st.DrawFn) -> tuple[str, str, str]:
    """(the log line, the secret, how the secret shows in the line)."""
    name, render, secrets = draw(st.sampled_from(TEMPLATES))
    key = draw(st.sampled_from(KEY_NAMES))
    secret = draw(secrets)
    shown = json.dumps(secret)[1:-1] if name == "json" else secret
    before, after = draw(noise), draw(noise)
    context = f"{before} {render(key, chr(0))} {after}"
    assume(shown not in context and secret not in context and shown not in REDACTED)
    return f"{before} {render(key, secret)} {after}", secret, shown


def test_random_secrets_in_random_text_never_reach_the_log(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)

    @settings(max_examples=300, deadline=None)
    @given(secret_lines(), st.sampled_from(["message", "args", "exception"]))
    def check(line: tuple[str, str, str], how: str) -> None:
        text, secret, shown = line
        mark = setup.buffer.last_seq
        if how == "message":
            log.info(text)
        elif how == "args":
            log.info("%s | %r", text, text)
        else:
            try:
                raise ValueError(text)
            except ValueError:
                log.exception("failed")
        (record,) = setup.buffer.records_since(mark)
        assert secret not in record.text
        assert shown not in record.text
        assert current_file(setup).endswith(record.text + "\n")  # the file got the same line

    check()


def test_registered_random_secrets_never_reach_the_log(tmp_path: Path) -> None:
    setup = setup_logging("INFO", tmp_path, stderr=False)

    @settings(max_examples=300, deadline=None)
    @given(st.text(any_char, min_size=4), noise, noise)
    def check(secret: str, before: str, after: str) -> None:
        assume(len(secret.strip()) >= MIN_SECRET_LENGTH and secret not in REDACTED)
        register_secret(secret)
        try:
            mark = setup.buffer.last_seq
            log.warning("%s%s%s", before, secret, after)
            (record,) = setup.buffer.records_since(mark)
            assert secret.strip() not in record.text
            assert current_file(setup).endswith(record.text + "\n")
        finally:
            forget_registered_secrets()

    check()


def test_a_secret_in_an_argument_shown_with_repr_is_hidden(tmp_path: Path) -> None:
    # %r escapes the quotes of a text holding both kinds, which hid the key from the
    # patterns when only the formatted message was redacted.
    setup = setup_logging("INFO", tmp_path / "logs", stderr=False)
    text = " {'api_key': '000000000000'} \""
    logging.getLogger("corral.test").info("%s | %r", text, text)
    assert "000000000000" not in buffer_text(setup)
    assert "000000000000" not in file_text(setup)
