"""Finding hosts: the scan dialog, keeping what it finds, mDNS suggestions, this machine."""

from __future__ import annotations

from collections.abc import Callable

from app.core.discovery.mdns import OLLAMA_SERVICE, MdnsService
from app.core.discovery.service import DiscoveryService
from app.core.events import Event
from app.core.hosts.base import HostKind
from app.core.hosts.identify import identify_url
from app.core.hosts.registry import HostRegistry
from app.ui.item_models import THIS_COMPUTER, FleetModel
from app.ui.scan_dialog import ScanDialog
from tests.fakes.ollama import FakeOllama
from tests.support.waiting import wait_for
from tests.ui.conftest import OpenAIFactory, WindowOpener, on_fixed_port
from tests.ui.helpers import host_cell, host_id_for, host_state


def _open_scan_dialog(window) -> ScanDialog:
    assert window.scan_button.isEnabled()
    window.scan_button.click()
    dialog = window.findChild(ScanDialog, "scanDialog")
    assert dialog is not None and dialog.isVisible()
    return dialog


async def test_scan_finds_hosts_and_keep_adds_one_to_the_fleet(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    openai_fakes: OpenAIFactory,
    qtbot,
) -> None:
    ollama = on_fixed_port(lambda p: fakes("127.0.0.2", port=p))
    vllm = on_fixed_port(
        lambda p: openai_fakes("127.0.0.3", port=p, flavor="vllm"), first=ollama.port + 1
    )
    registry.remove("local")
    async with open_window(registry) as window:
        dialog = _open_scan_dialog(window)
        assert dialog.ports_edit.text() == "11434, 1234, 8080, 8000"  # from the settings
        dialog.targets_edit.clear()
        qtbot.keyClicks(dialog.targets_edit, "127.0.0.0/26")
        dialog.ports_edit.setText(f"{ollama.port}, {vllm.port}")
        assert dialog.start_button.isEnabled()
        assert dialog.message.text() == ""

        seen: list[int] = []
        dialog.progress_bar.valueChanged.connect(seen.append)
        dialog.start_button.click()
        assert dialog.state == "scanning"
        assert dialog.cancel_button.isEnabled()
        assert not dialog.start_button.isEnabled()
        total = 62 * 2  # the hosts of a /26, two ports each
        assert dialog.progress_bar.maximum() == total

        await wait_for(lambda: dialog.state == "done", timeout=20)
        assert seen and seen == sorted(seen), f"the progress bar went back: {seen}"
        assert dialog.progress_bar.value() == dialog.progress_bar.maximum() == total
        assert f"probed {total}" in dialog.counts_label.text()
        assert "found 2 model hosts" in dialog.counts_label.text()
        assert not dialog.cancel_button.isEnabled()

        table = dialog.found_table
        assert {ollama.url, vllm.url} <= set(table.urls())
        row = table.urls().index(vllm.url)
        assert table.item(row, table.TYPE).text() == "vLLM"
        assert table.item(row, table.ADDRESS).text() == f"127.0.0.3:{vllm.port}"
        assert table.item(row, table.MODELS).text() == str(len(vllm.models))
        assert table.item(row, table.SOURCE).text() == "scan"

        # one click: the host is in the fleet at once, with its type badge
        before = len(registry.hosts())
        table.keep_button(vllm.url).click()
        assert len(registry.hosts()) == before + 1
        host_id = host_id_for(window, vllm.url)
        assert host_cell(window, host_id, FleetModel.TYPE) == "vLLM"
        assert window.fleet_model.get(host_id).machine == THIS_COMPUTER
        assert window.current_host_id() == host_id
        assert vllm.url not in table.urls()  # no longer suggested
        await wait_for(lambda: host_state(window, host_id) == "online")
        assert host_cell(window, host_id, FleetModel.VERSION) == vllm.version

        table.dismiss_button(ollama.url).click()
        assert ollama.url not in table.urls()
        assert all(row.config.url != ollama.url for row in window.fleet_model.rows())

        dialog.close_button.click()
        await wait_for(lambda: window.scan_dialog is None)


async def test_scan_targets_are_checked_in_the_dialog(
    open_window: WindowOpener, registry: HostRegistry, qtbot
) -> None:
    async with open_window(registry) as window:
        dialog = _open_scan_dialog(window)
        dialog.ports_edit.setText("11434")
        cases = {
            "8.8.8.0/24": "not a local network",
            "10.0.0.0/8": "Corral scans at most",
            "banana": "is not a network",
            "": "Enter a network to scan",
            "192.168.1.0/24, 1.2.3.4": "not a local network",
        }
        for text, expected in cases.items():
            dialog.targets_edit.setText(text)
            assert expected in dialog.message.text(), (text, dialog.message.text())
            assert not dialog.start_button.isEnabled()
        dialog.targets_edit.setText("192.168.1.0/24, 10.1.2.3")
        assert dialog.message.text() == ""
        assert dialog.start_button.isEnabled()

        dialog.ports_edit.setText("11434, http")
        assert "not a port number" in dialog.message.text()
        assert not dialog.start_button.isEnabled()
        dialog.ports_edit.setText("70000")
        assert "1 to 65535" in dialog.message.text()
        dialog.ports_edit.setText("")
        assert "at least one port" in dialog.message.text()
        dialog.start_scan()  # ignored while the input is bad
        assert dialog.state == "idle"
        dialog.reject()


async def test_closing_the_dialog_cancels_the_scan(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
    qtbot,
) -> None:
    # A host that accepts connections and never answers keeps identification waiting.
    hung = on_fixed_port(lambda p: fakes("127.0.0.2", port=p))
    hung.faults.hang = True
    discovery = DiscoveryService(registry, local_ports=(), probe_timeout=5.0)
    async with open_window(registry, discovery=discovery) as window:
        dialog = _open_scan_dialog(window)
        dialog.targets_edit.setText("127.0.0.2")
        dialog.ports_edit.setText(str(hung.port))
        states: list[str] = []
        dialog.stateChanged.connect(states.append)
        dialog.start_button.click()
        await wait_for(lambda: discovery.scanning)
        await wait_for(lambda: hung.requests)  # identification has reached the hung host
        assert dialog.state == "scanning"
        dialog.close_button.click()
        await wait_for(lambda: "cancelled" in states)
        assert not discovery.scanning
        await wait_for(lambda: window.scan_dialog is None)


class _StubBrowser:
    """Stands in for the mDNS browser: the test announces services itself."""

    def __init__(self) -> None:
        self.found: Event[MdnsService] = Event("found")
        self.lost: Event[MdnsService] = Event("lost")

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_announced_hosts_show_as_suggestions_with_keep(
    open_window: WindowOpener,
    registry: HostRegistry,
    fakes: Callable[..., FakeOllama],
) -> None:
    box = fakes("127.0.0.6", models=["qwen3:0.6b"])
    identity = await identify_url(box.url)
    assert identity is not None and identity.kind is HostKind.OLLAMA
    registry.remove("local")
    discovery = DiscoveryService(registry, local_ports=())
    browser = _StubBrowser()
    async with open_window(registry, discovery=discovery) as window:
        strip = window.suggestions_strip
        assert not strip.isVisible()
        await discovery.start_mdns(browser)  # type: ignore[arg-type]
        browser.found.emit(
            MdnsService(
                name=f"gpu-box.{OLLAMA_SERVICE}",
                service_type=OLLAMA_SERVICE,
                server="gpu-box.local.",
                addresses=("127.0.0.6",),
                port=box.port,
                identity=identity,
            )
        )
        await wait_for(lambda: box.url in strip.urls())
        assert strip.isVisible()

        # the scan dialog lists it too, as announced
        dialog = _open_scan_dialog(window)
        table = dialog.found_table
        assert box.url in table.urls()
        row = table.urls().index(box.url)
        assert table.item(row, table.SOURCE).text() == "announced (mDNS)"
        assert "gpu-box" in table.item(row, table.NAME).text()
        dialog.reject()

        strip.keep_button(box.url).click()
        host_id = host_id_for(window, box.url)
        assert host_cell(window, host_id, FleetModel.TYPE) == "Ollama"
        await wait_for(lambda: not strip.isVisible())
        await wait_for(lambda: host_state(window, host_id) == "online")


async def test_this_computers_servers_appear_at_start_without_a_scan(
    open_window: WindowOpener,
    registry: HostRegistry,
    openai_fakes: OpenAIFactory,
) -> None:
    studio = on_fixed_port(lambda p: openai_fakes("127.0.0.1", port=p, flavor="lmstudio"))
    discovery = DiscoveryService(registry, local_ports=(studio.port,))
    async with open_window(registry, discovery=discovery) as window:
        url = f"http://127.0.0.1:{studio.port}"
        await wait_for(lambda: any(r.config.url == url for r in window.fleet_model.rows()))
        host_id = host_id_for(window, url)
        assert host_cell(window, host_id, FleetModel.TYPE) == "LM Studio"
        assert window.fleet_model.get(host_id).machine == THIS_COMPUTER
        await wait_for(lambda: host_state(window, host_id) == "online")
        assert window.fleet_model.summary(THIS_COMPUTER).startswith("2 hosts, 1 online")
        assert not discovery.scanning
    saved = registry._store.path
    assert not saved.exists() or url not in saved.read_text(encoding="utf-8")  # not saved
