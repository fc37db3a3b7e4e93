"""Make Corral's icon files from the SVG source.

``corral.svg`` is the one hand-drawn source. From it this script writes:

- ``tray-ok.svg``, ``tray-degraded.svg``, ``tray-offline.svg``: the app icon with a
  state badge (green tick: every host answers; amber "!": some do not or are slow; red
  cross on a faded icon: none answers);
- ``icons/hicolor/<N>x<N>/apps/corral.png``: the app icon for desktops and the Linux
  desktop entry;
- ``tray/tray-<state>-<N>.png``: the tray icons at the sizes panels use;
- ``corral.ico``: the Windows icon (several sizes in one file).

Run it after editing ``corral.svg`` or this file, and commit what it writes::

    python resources/build_icons.py            # into resources/
    python resources/build_icons.py --out DIR  # elsewhere (the tests compare the two)

It needs PySide6 only (QtSvg and the ico image plugin ship with it) and no display.
"""

from __future__ import annotations

import argparse
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QImage, QImageWriter, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "corral.svg"

#: Square sizes of the app icon PNGs (the hicolor theme folders).
APP_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
#: Sizes of the tray PNGs (22 is the usual Linux panel size).
TRAY_SIZES = (16, 22, 24, 32, 48, 64)
#: Sizes inside corral.ico; 256 is stored as PNG, the others as bitmaps.
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)

SVG_NS = "http://www.w3.org/2000/svg"

#: Tray states: title, badge colour (the host status colours of the window), glyph.
BADGES: dict[str, tuple[str, str, str]] = {
    "ok": (
        "Corral: every host answers",
        "#2e9d4f",
        '<path d="M163 193 L183 213 L221 171" fill="none" stroke="#ffffff"'
        ' stroke-width="18" stroke-linecap="round" stroke-linejoin="round"/>',
    ),
    "degraded": (
        "Corral: some hosts do not answer or are slow",
        "#e0a21b",
        '<line x1="192" y1="160" x2="192" y2="198" stroke="#ffffff" stroke-width="18"'
        ' stroke-linecap="round"/><circle cx="192" cy="224" r="10" fill="#ffffff"/>',
    ),
    "offline": (
        "Corral: no host answers",
        "#d0393e",
        '<g stroke="#ffffff" stroke-width="18" stroke-linecap="round">'
        '<line x1="170" y1="170" x2="214" y2="214"/>'
        '<line x1="214" y1="170" x2="170" y2="214"/></g>',
    ),
}
#: How much of the app icon shows under the badge when no host answers.
OFFLINE_OPACITY = "0.45"


def _tag(name: str) -> str:
    return f"{{{SVG_NS}}}{name}"


def tray_svg(source_text: str, state: str) -> str:
    """The SVG text of a tray icon: the app icon with the badge of ``state``."""
    ET.register_namespace("", SVG_NS)
    root = ET.fromstring(source_text)
    title_text, color, glyph = BADGES[state]
    body = [child for child in root if child.tag != _tag("title")]
    for child in list(root):
        root.remove(child)
    title = ET.SubElement(root, _tag("title"))
    title.text = title_text
    if state == "offline":
        faded = ET.SubElement(root, _tag("g"), {"opacity": OFFLINE_OPACITY})
        faded.extend(body)
    else:
        root.extend(body)
    badge = ET.SubElement(root, _tag("g"), {"id": "badge"})
    ET.SubElement(
        badge,
        _tag("circle"),
        {
            "cx": "192",
            "cy": "192",
            "r": "58",
            "fill": color,
            "stroke": "#ffffff",
            "stroke-width": "12",
        },
    )
    badge.extend(ET.fromstring(f'<g xmlns="{SVG_NS}">{glyph}</g>'))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def render(svg: bytes, size: int) -> QImage:
    """The SVG drawn into a transparent ``size`` x ``size`` image."""
    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise ValueError("the SVG cannot be read")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image.convertToFormat(QImage.Format.Format_ARGB32)


def encode(image: QImage, fmt: str) -> bytes:
    """The image written in ``fmt`` ("png" or "ico") by Qt's image writers."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, fmt.encode())
    if fmt == "png":
        writer.setQuality(0)  # smallest file; PNG is lossless either way
    if not writer.write(image):
        raise RuntimeError(f"Qt cannot write {fmt}: {writer.errorString()}")
    buffer.close()
    return bytes(data.data())


def _clear_mask_padding(bitmap: bytes, width: int, height: int) -> bytes:
    """The bitmap with the unused bits at the end of each mask row set to zero.

    Qt leaves them as they were in memory, so the file would change on every run."""
    row = (width + 31) // 32 * 4
    used = (width + 7) // 8
    start = 40 + width * height * 4  # after the header and the 32-bit pixels
    if len(bitmap) != start + row * height:
        raise RuntimeError(f"Qt's ico writer wrote an unexpected {width}x{height} bitmap")
    out = bytearray(bitmap)
    for y in range(height):
        begin = start + y * row
        out[begin + used : begin + row] = bytes(row - used)
        if width % 8:
            out[begin + used - 1] &= (0xFF << (8 - width % 8)) & 0xFF
    return bytes(out)


def ico(images: list[QImage]) -> bytes:
    """One .ico holding every image: bitmaps from Qt's ico writer, PNG from 256 up."""
    entries: list[tuple[bytes, bytes]] = []  # (directory entry less its offset, data)
    for image in images:
        if image.width() >= 256:
            data = encode(image, "png")
            head = struct.pack("<BBBBHHI", 0, 0, 0, 0, 1, 32, len(data))
        else:
            single = encode(image, "ico")
            count = struct.unpack_from("<H", single, 4)[0]
            if count != 1:
                raise RuntimeError(f"Qt's ico writer wrote {count} images, not one")
            head = single[6:18]  # width .. size of the data
            offset = struct.unpack_from("<I", single, 18)[0]
            data = _clear_mask_padding(single[offset:], image.width(), image.height())
        entries.append((head, data))
    out = bytearray(struct.pack("<HHH", 0, 1, len(entries)))
    offset = 6 + 16 * len(entries)
    for head, data in entries:
        out += head + struct.pack("<I", offset)
        offset += len(data)
    for _head, data in entries:
        out += data
    return bytes(out)


def _write(path: Path, data: bytes, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    written.append(path)


def build(out: Path, source: Path = SOURCE) -> list[Path]:
    """Write every generated icon file under ``out``; the paths written."""
    source_text = source.read_text(encoding="utf-8")
    app_svg = source_text.encode("utf-8")
    written: list[Path] = []
    for size in APP_SIZES:
        png = encode(render(app_svg, size), "png")
        _write(out / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "corral.png", png, written)
    _write(out / "corral.ico", ico([render(app_svg, size) for size in ICO_SIZES]), written)
    for state in BADGES:
        text = tray_svg(source_text, state)
        _write(out / f"tray-{state}.svg", text.encode("utf-8"), written)
        for size in TRAY_SIZES:
            png = encode(render(text.encode("utf-8"), size), "png")
            _write(out / "tray" / f"tray-{state}-{size}.png", png, written)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make Corral's icon files from corral.svg.")
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder to write into (default: resources/)"
    )
    parser.add_argument(
        "--source", type=Path, default=SOURCE, help="the app icon SVG (default: corral.svg)"
    )
    args = parser.parse_args(argv)
    try:
        written = build(args.out, args.source)
    except (OSError, ValueError, RuntimeError, ET.ParseError) as exc:
        print(f"build_icons: {exc}", file=sys.stderr)
        return 1
    total = sum(path.stat().st_size for path in written)
    print(f"build_icons: wrote {len(written)} files ({total / 1024:.0f} KiB) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
