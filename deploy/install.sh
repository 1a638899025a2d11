#!/bin/sh
# Install raman-edge on this board from this unpacked offline installer; no network needed. As root:
#   sudo ./install.sh [--port /dev/ttyUSB0 | --usb-id VID:PID[:SERIAL]] [--config FILE] [--operator USER] [--enable]
# It makes the virtual environment and installs the pinned wheels into it (pip checks every hash), then
# hands over to `raman-device install`, which lays out the models, configuration, data directory, unit,
# udev rule and service user. Options are those of `raman-device install --help`.
# RAMAN_EDGE_ROOT=DIR stages the whole installation under DIR instead of / (to inspect it; no root needed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${RAMAN_EDGE_ROOT:-/}
prefix=/opt/raman-edge
python=${PYTHON:-python3}
fail() { echo "install.sh: $*" >&2; exit 1; }

[ "$root" != / ] || [ "$(id -u)" = 0 ] || fail "run as root: sudo $0 $*"
want=$(sed -n 's/^python=//p' "$here/INSTALLER")
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || fail "no $python on this system"
[ "$have" = "$want" ] || fail "this installer is for Python $want, but $python is $have; build one for this board"
"$python" -c 'import ensurepip, venv' 2>/dev/null || fail "Python's venv is missing: apt install python3-venv"

venv="${root%/}$prefix/venv"
"$python" -m venv "$venv"
# -I: isolated from PYTHONPATH and the user's site-packages, so that no raman-edge found there counts as installed
"$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check --no-index \
    --find-links "$here/wheelhouse" --require-hashes -r "$here/wheelhouse/requirements.txt" \
    || fail "installing the wheels failed (see above); the installer may be damaged or for another board"
exec "$venv/bin/raman-device" install --from "$here" --root "$root" "$@"
