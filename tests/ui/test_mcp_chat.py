"""End to end in the window: chat -> the model asks for a tool -> approval in the chat ->
the real MCP test server (stdio, through the manager) -> result -> the model's answer.
And drops onto the MCP panel: a preview first, nothing changed until Add."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.core.hosts.registry import HostRegistry
from app.core.mcp.types import ServerState
from app.ui.chat.panel import ChatPanel
from app.ui.chat.tool_card import ToolCallCard
from app.ui.main_window import MainWindow
from app.ui.mcp_drop import McpDropDialog
from tests.fakes.ollama import FakeOllama, ToolScriptStep
from tests.support.waiting import wait_for
from tests.ui.conftest import WindowOpener
from tests.ui.helpers import host_id_for

ROOT = Path(__file__).resolve().parents[2]
MODEL = "llama3.2:latest"


def _mcp_file(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "mcp.json"
    entry = {"command": sys.executable, "args": ["-m", "tests.fakes.mcp_server"], "cwd": str(ROOT)}
    entry.update(extra)
    path.write_text(json.dumps({"mcpServers": {"fake": entry}}), encoding="utf-8")
    return path


def _cards(panel: ChatPanel) -> list[ToolCallCard]:
    return [w for w in panel.view.widgets if isinstance(w, ToolCallCard)]


async def _ready(window: MainWindow, fake: FakeOllama) -> ChatPanel:
    assert window.mcp is not None
    mcp = window.mcp
    await wait_for(lambda: mcp.status("fake").state is ServerState.READY, timeout=30)
    panel = window.chat_panel
    host_id = host_id_for(window, fake.url)
    await wait_for(lambda: panel.choose_model(host_id, MODEL), timeout=10)
    return panel


async def _asking(panel: ChatPanel) -> ToolCallCard:
    """The card whose approval prompt is shown (once the engine asks and the card is in)."""
    found = await wait_for(
        lambda: panel.pending_approvals() and [c for c in _cards(panel) if c.asking][-1:],
        timeout=10,
    )
    return found[0]


def _chat_bodies(fake: FakeOllama) -> list[dict[str, object]]:
    return [r[2] for r in fake.requests if r[1] == "/api/chat"]


async def test_a_tool_call_is_approved_run_and_answered(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.tool_script = [
        ToolScriptStep.call("echo", {"text": "hello from the model"}),
        ToolScriptStep.say("The echo tool said hello."),
    ]
    async with open_window(
        registry_with_fake, chat_db=tmp_path / "chat.db", mcp_config=_mcp_file(tmp_path)
    ) as window:
        panel = await _ready(window, fake)
        panel.composer.setPlainText("Say hello through the echo tool")
        panel.send()
        card = await _asking(panel)
        assert card is _cards(panel)[0]
        assert "Echo" in card.title_label.text() and "on fake" in card.title_label.text()
        assert "read-only" in card.hints_label.text()
        assert '"text": "hello from the model"' in card.arguments_label.text()
        card.allow_once_button.click()
        await wait_for(lambda: not panel.busy, timeout=15)
        assert "Allowed once" in card.decision_label.text()
        assert "hello from the model" in card.result_label.text()
        replies = [w for w in panel.view.message_widgets() if w.role == "assistant"]
        assert replies[-1].text() == "The echo tool said hello."
        # the second request carried the tool's result back to the model
        bodies = _chat_bodies(fake)
        tools_offered = {t["function"]["name"] for t in bodies[0]["tools"]}  # type: ignore[index,union-attr]
        assert {"echo", "plan_trip", "hang"} <= tools_offered
        last_messages = bodies[-1]["messages"]
        assert isinstance(last_messages, list)
        assert last_messages[-1]["role"] == "tool"
        assert last_messages[-1]["content"] == "hello from the model"
        # reopening the conversation shows the call and its result from the database
        conversation_id = panel.current.id if panel.current else ""
        panel.new_conversation()
        panel.open_conversation(conversation_id)
        await wait_for(lambda: _cards(panel))
        again = _cards(panel)[0]
        assert "hello from the model" in again.result_label.text()
        assert "Allowed once" in again.decision_label.text()


async def test_deny_tells_the_model_and_always_allow_is_kept(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    config = _mcp_file(tmp_path)
    fake.tool_script = [
        ToolScriptStep.call("echo", {"text": "first"}),
        ToolScriptStep.say("You declined."),
        ToolScriptStep.call("echo", {"text": "second"}),
        ToolScriptStep.say("Done."),
        ToolScriptStep.call("echo", {"text": "third"}),
        ToolScriptStep.say("Done again."),
    ]
    async with open_window(
        registry_with_fake, chat_db=tmp_path / "chat.db", mcp_config=config
    ) as window:
        panel = await _ready(window, fake)
        panel.composer.setPlainText("Echo something")
        panel.send()
        (await _asking(panel)).deny_button.click()
        await wait_for(lambda: not panel.busy, timeout=15)
        assert "Denied" in _cards(panel)[-1].decision_label.text()
        told = _chat_bodies(fake)[-1]["messages"][-1]  # type: ignore[index]
        assert told["role"] == "tool" and "declined" in told["content"].lower()

        panel.composer.setPlainText("Echo again")
        panel.send()
        (await _asking(panel)).allow_always_button.click()
        await wait_for(lambda: not panel.busy, timeout=15)
        saved = json.loads(config.read_text(encoding="utf-8"))
        assert saved["mcpServers"]["fake"]["autoApprove"] == ["echo"]

        asked: list[str] = []
        panel.approvalRequested.connect(asked.append)
        panel.composer.setPlainText("And once more")
        panel.send()
        await wait_for(lambda: not panel.busy and len(_cards(panel)) == 3, timeout=15)
        await wait_for(lambda: "third" in _cards(panel)[-1].result_label.text())
        assert asked == []  # always allowed: not asked again
        assert "by a rule" in _cards(panel)[-1].decision_label.text()

        # the rule is listed with the MCP servers, and can be taken back
        mcp_panel = window.mcp_panel
        assert mcp_panel is not None
        mcp_panel.tabs.setCurrentIndex(mcp_panel.approvals_tab)
        await wait_for(lambda: mcp_panel.approvals() == [("fake", "echo")])
        item = mcp_panel.approvals_view.topLevelItem(0)
        assert item is not None
        mcp_panel.approvals_view.setCurrentItem(item)
        mcp_panel.revoke_button.click()
        await wait_for(lambda: mcp_panel.approvals() == [])
        saved = json.loads(config.read_text(encoding="utf-8"))
        assert saved["mcpServers"]["fake"].get("autoApprove", []) == []
        fake.tool_script = [ToolScriptStep.call("echo", {"text": "fourth"})]
        panel.composer.setPlainText("Echo after the revoke")
        panel.send()
        await wait_for(lambda: asked, timeout=10)  # asked again
        await _asking(panel)
        panel.stop()
        await wait_for(lambda: not panel.busy, timeout=10)
        assert "Not answered" in _cards(panel)[-1].decision_label.text()


def _drop(window: MainWindow, mime: QMimeData) -> None:
    panel = window.mcp_panel
    assert panel is not None
    event = QDropEvent(
        QPointF(QPoint(10, 10)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    panel.dropEvent(event)


async def _preview(window: MainWindow) -> McpDropDialog:
    controller = window.mcp_controller
    assert controller is not None
    return await wait_for(lambda: controller.dialogs and controller.dialogs[-1], timeout=10)


async def test_dropping_a_claude_desktop_file_previews_then_adds(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    config = _mcp_file(tmp_path)
    before = config.read_bytes()
    claude = tmp_path / "claude_desktop_config.json"
    claude.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
                    "fake": {"command": "npx", "args": ["-y", "something"]},
                }
            }
        ),
        encoding="utf-8",
    )
    async with open_window(registry_with_fake, mcp_config=config) as window:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(claude))])
        _drop(window, mime)
        dialog = await _preview(window)
        names = [row.item.name for row in dialog.rows]
        assert set(names) == {"time", "fake"}
        conflict = next(row for row in dialog.rows if row.item.conflict)
        assert conflict.item.conflict == "fake"
        assert config.read_bytes() == before  # nothing changed yet
        dialog.reject()
        assert config.read_bytes() == before  # cancel changes nothing

        _drop(window, mime)
        dialog = await _preview(window)
        dialog.add_button.click()
        assert window.mcp is not None
        mcp = window.mcp
        await wait_for(lambda: len(mcp.statuses()) == 3, timeout=10)
        saved = json.loads(config.read_text(encoding="utf-8"))["mcpServers"]
        renamed = next(row.item.suggested_name for row in dialog.rows if row.item.conflict)
        assert renamed != "fake"
        assert set(saved) == {"fake", "time", renamed}
        assert saved["fake"]["args"] == ["-m", "tests.fakes.mcp_server"]  # not replaced
        await wait_for(lambda: mcp.status("time").state is ServerState.READY, timeout=30)
        assert window.mcp_panel is not None
        assert "time" in window.mcp_panel.server_names()


async def test_a_vscode_file_with_an_input_asks_for_it(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    vscode = tmp_path / "mcp-vscode.json"
    vscode.write_text(
        json.dumps(
            {
                "inputs": [
                    {
                        "type": "promptString",
                        "id": "api-key",
                        "description": "API key",
                        "password": True,
                    }
                ],
                "servers": {
                    "search": {
                        "type": "stdio",
                        "command": sys.executable,
                        "args": ["-m", "tests.fakes.mcp_server"],
                        "env": {"SEARCH_API_KEY": "${input:api-key}"},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    async with open_window(registry_with_fake, mcp_config=config) as window:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(vscode))])
        _drop(window, mime)
        dialog = await _preview(window)
        assert list(dialog.inputs) == ["api-key"]
        edit = dialog.inputs["api-key"]
        assert edit.echoMode() == edit.EchoMode.Password
        edit.setText("s3cret-value")
        dialog.add_button.click()
        await wait_for(lambda: config.exists() and "search" in config.read_text("utf-8"))
        text = config.read_text("utf-8")
        assert "s3cret-value" not in text  # the secret went to the keyring
        assert window.mcp_store is not None
        resolved = {s.name: s for s in window.mcp_store.servers()}
        assert resolved["search"].env["SEARCH_API_KEY"] == "s3cret-value"


async def test_a_url_and_broken_json_are_explained(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    config = _mcp_file(tmp_path)
    before = config.read_bytes()
    async with open_window(registry_with_fake, mcp_config=config) as window:
        mime = QMimeData()
        mime.setText('{"mcpServers": {"x": {"command": "a",}')
        _drop(window, mime)
        dialog = await _preview(window)
        assert not dialog.rows
        assert dialog.error_label.text()
        assert not dialog.add_button.isEnabled()
        dialog.reject()

        mime = QMimeData()
        mime.setText("http://127.0.0.1:9/mcp")  # nothing listens there
        _drop(window, mime)
        dialog = await _preview(window)
        assert len(dialog.rows) == 1
        assert dialog.rows[0].item.transport is None  # detected when added
        failures: list[str] = []
        dialog.failed.connect(failures.append)
        dialog.add_button.click()
        await wait_for(lambda: failures, timeout=30)
        assert "No MCP server answers at http://127.0.0.1:9/mcp" in dialog.error_label.text()
        assert dialog.isVisible()
        dialog.reject()
        assert config.read_bytes() == before


async def test_a_server_that_crashes_during_a_call_leaves_the_chat_going(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    config = _mcp_file(tmp_path, autoApprove=["crash"])
    fake.tool_script = [
        ToolScriptStep.call("crash", {"code": 3}),
        ToolScriptStep.say("The tool failed; here is an answer without it."),
    ]
    async with open_window(
        registry_with_fake, chat_db=tmp_path / "chat.db", mcp_config=config
    ) as window:
        panel = await _ready(window, fake)
        assert window.mcp is not None
        mcp = window.mcp
        states: list[ServerState] = []
        mcp.changed.connect(lambda s: states.append(s.state))
        ended: list[str] = []
        panel.replyEnded.connect(ended.append)
        panel.composer.setPlainText("Try the crash tool")
        panel.send()
        await wait_for(lambda: ended, timeout=20)
        card = _cards(panel)[-1]
        assert card.result_label.text().startswith("Failed")
        replies = [w for w in panel.view.message_widgets() if w.role == "assistant"]
        assert replies[-1].text() == "The tool failed; here is an answer without it."
        told = _chat_bodies(fake)[-1]["messages"][-1]  # type: ignore[index]
        assert told["role"] == "tool" and told["content"]  # the model was told in words
        # the server is marked failed with its stderr, and comes back by itself
        await wait_for(lambda: ServerState.FAILED in states, timeout=10)
        await wait_for(lambda: mcp.status("fake").state is ServerState.READY, timeout=30)
        assert "crashing now" in "\n".join(mcp.status("fake").stderr_tail)


async def test_a_server_that_is_down_is_named_in_the_reply(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "broken": {"command": sys.executable, "args": ["-c", "raise SystemExit(7)"]}
                }
            }
        ),
        encoding="utf-8",
    )
    async with open_window(
        registry_with_fake, chat_db=tmp_path / "chat.db", mcp_config=config
    ) as window:
        assert window.mcp is not None
        mcp = window.mcp
        await wait_for(lambda: mcp.status("broken").state is ServerState.FAILED, timeout=30)
        panel = window.chat_panel
        host_id = host_id_for(window, fake.url)
        await wait_for(lambda: panel.choose_model(host_id, MODEL), timeout=10)
        ended: list[str] = []
        panel.replyEnded.connect(ended.append)
        panel.composer.setPlainText("Hello")
        panel.send()
        await wait_for(lambda: ended, timeout=15)
        reply = [w for w in panel.view.message_widgets() if w.role == "assistant"][-1]
        assert reply.notice.isVisible()
        assert "Tools not available for this reply: broken" in reply.notice.text()
        assert reply.text() == fake.chat_reply  # the chat goes on without them
        assert "tools" not in _chat_bodies(fake)[-1]


async def test_allow_in_this_conversation_is_not_asked_again_there_only(
    open_window: WindowOpener, registry_with_fake: HostRegistry, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.tool_script = [
        ToolScriptStep.call("echo", {"text": "one"}),
        ToolScriptStep.say("First."),
        ToolScriptStep.call("echo", {"text": "two"}),
        ToolScriptStep.say("Second."),
        ToolScriptStep.call("echo", {"text": "three"}),
        ToolScriptStep.say("Third."),
    ]
    async with open_window(
        registry_with_fake, chat_db=tmp_path / "chat.db", mcp_config=_mcp_file(tmp_path)
    ) as window:
        panel = await _ready(window, fake)
        asked: list[str] = []
        panel.approvalRequested.connect(asked.append)
        ended: list[str] = []
        panel.replyEnded.connect(ended.append)
        panel.composer.setPlainText("Echo one")
        panel.send()
        (await _asking(panel)).allow_conversation_button.click()
        await wait_for(lambda: len(ended) == 1, timeout=15)
        panel.composer.setPlainText("Echo two")
        panel.send()
        await wait_for(lambda: len(ended) == 2, timeout=15)
        assert len(asked) == 1  # not asked again in this conversation
        assert "two" in _cards(panel)[-1].result_label.text()
        panel.new_conversation()
        panel.composer.setPlainText("Echo three")
        panel.send()
        await _asking(panel)  # another conversation: asked again
        assert len(asked) == 2
        panel.stop()
        await wait_for(lambda: len(ended) == 3, timeout=15)


async def test_sign_out_forgets_a_remote_servers_tokens(
    open_window: WindowOpener, registry_with_fake: HostRegistry, tmp_path: Path
) -> None:
    from tests.fakes.mcp_server import FakeMcpProcess

    with FakeMcpProcess("http") as server:
        config = tmp_path / "mcp.json"
        config.write_text(
            json.dumps({"mcpServers": {"remote": {"url": server.url}}}), encoding="utf-8"
        )
        async with open_window(registry_with_fake, mcp_config=config) as window:
            assert window.mcp is not None and window.mcp_panel is not None
            mcp, panel = window.mcp, window.mcp_panel
            await wait_for(lambda: mcp.status("remote").state is ServerState.READY, timeout=30)
            tokens = mcp.oauth_store("remote")
            tokens.save("tokens", '{"access_token": "abc", "token_type": "Bearer"}')
            assert tokens.load("tokens")
            assert panel.select_server("remote")
            assert panel.sign_out_button.isVisibleTo(panel)
            assert window.mcp_controller is not None
            signed_out: list[str] = []
            window.mcp_controller.signedOut.connect(signed_out.append)
            panel.sign_out_button.click()
            await wait_for(lambda: signed_out == ["remote"], timeout=10)
            assert tokens.load("tokens") is None
            assert registry_with_fake.secrets.get(tokens.key("tokens")) is None
            assert "Signed out of remote" in panel.status_label.text()
            await wait_for(lambda: mcp.status("remote").state is ServerState.READY, timeout=30)
