#!/usr/bin/env bash
# Build Corral's program folder (dist/corral) with PyInstaller, then the Windows installer
# (dist/corral-<version>-setup.exe) from installer.nsi when makensis is installed.
#
#   packaging/build.sh [--zlib] [--no-bundle] [--no-installer]
#
#   --zlib          compress the installer with zlib (fast; for CI) instead of solid LZMA
#   --no-bundle     use the dist/corral already there
#   --no-installer  stop after the program folder
#
# PYTHON (default: the .venv's python, else python3) runs PyInstaller; it needs the app's
# dependencies and pyinstaller installed. Work files go to build/, output to dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

compression=lzma
bundle=1
installer=1
for arg in "$@"; do
  case "$arg" in
    --zlib) compression=zlib ;;
    --no-bundle) bundle=0 ;;
    --no-installer) installer=0 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "${PYTHON:-}" ]; then
  py=$PYTHON
elif [ -x .venv/bin/python ]; then
  py=.venv/bin/python
elif [ -x .venv/Scripts/python.exe ]; then
  py=.venv/Scripts/python.exe
else
  py=python3
fi
version=$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' app/__init__.py)
if [ -z "$version" ]; then
  echo "build.sh: no __version__ in app/__init__.py" >&2
  exit 1
fi
src_dir="$root/dist/corral"

if [ "$bundle" = 1 ]; then
  if ! "$py" -c 'import PyInstaller' 2>/dev/null; then
    echo "build.sh: PyInstaller is not installed for $py (pip install 'pyinstaller>=6.10')" >&2
    exit 1
  fi
  # PyInstaller's own cache stays with the other work files
  export PYINSTALLER_CONFIG_DIR=${PYINSTALLER_CONFIG_DIR:-$root/build/pyinstaller-cache}
  echo "build.sh: building the program folder for Corral $version"
  start=$(date +%s)
  "$py" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$root/dist" --workpath "$root/build/pyinstaller" packaging/corral.spec
  echo "build.sh: $src_dir ($(du -sh "$src_dir" | cut -f1)) in $(( $(date +%s) - start )) s"
fi

if [ "$installer" = 1 ]; then
  if ! command -v makensis >/dev/null 2>&1; then
    echo "build.sh: makensis is not installed; no installer built (apt-get install nsis)"
    exit 0
  fi
  if [ ! -d "$src_dir/_internal" ]; then
    echo "build.sh: $src_dir is not a built program folder; run without --no-bundle" >&2
    exit 1
  fi
  numeric=$(printf '%s' "$version" | grep -oE '^[0-9]+(\.[0-9]+){0,3}' || true)
  while [ "$(printf '%s' "$numeric" | tr -cd . | wc -c)" -lt 3 ]; do numeric="$numeric.0"; done
  exe_file=corral.exe
  [ -f "$src_dir/$exe_file" ] || exe_file=corral  # a folder built on Linux (CI's compile check)
  outfile="$root/dist/corral-$version-setup.exe"
  echo "build.sh: building $(basename "$outfile") ($compression)"
  start=$(date +%s)
  makensis -WX -V2 -INPUTCHARSET UTF8 \
    "-DVERSION=$version" "-DVI_VERSION=$numeric" "-DSRC_DIR=$src_dir" "-DEXE_FILE=$exe_file" \
    "-DOUTFILE=$outfile" "-DCOMPRESSION=$compression" installer.nsi
  echo "build.sh: $outfile ($(du -h "$outfile" | cut -f1)) in $(( $(date +%s) - start )) s"
fi
