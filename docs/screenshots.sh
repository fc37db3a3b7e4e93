#!/usr/bin/env bash
# Render the README's screenshots (docs/*.png) from the current code.
#
#   docs/screenshots.sh
#
# Runs docs/screenshots.py under Xvfb with Qt's xcb platform (a real X server, so the
# window is drawn as on a desktop). Without Xvfb, or when Qt's xcb platform does not
# start, it says why and renders with Qt's offscreen platform instead.
# PYTHON names the interpreter (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
screen="-screen 0 1920x1080x24"

offscreen() {
    echo "screenshots: $1; rendering with Qt's offscreen platform instead." >&2
    QT_QPA_PLATFORM=offscreen exec "$python" -m docs.screenshots
}

if ! command -v xvfb-run >/dev/null || ! command -v Xvfb >/dev/null; then
    offscreen "Xvfb is not installed (on Debian: apt install xvfb xauth)"
fi
# Whether Qt's xcb platform starts under Xvfb (a minute at most to find out).
if ! QT_QPA_PLATFORM=xcb timeout 60 xvfb-run -a -s "$screen" "$python" -c \
    "from PySide6.QtWidgets import QApplication; QApplication([])" >/dev/null 2>&1; then
    offscreen "Qt's xcb platform does not start under Xvfb (run it with QT_DEBUG_PLUGINS=1 \
to see which library is missing: Qt needs libxcb-cursor0, libxkbcommon-x11-0 and the \
other libxcb-* libraries)"
fi
QT_QPA_PLATFORM=xcb exec xvfb-run -a -s "$screen" "$python" -m docs.screenshots
