#!/bin/sh
# Install raman-edge on this board from this unpacked offline installer; no network needed. As root:
#   sudo ./install.sh [--port /dev/ttyUSB0 | --usb-id VID:PID[:SERIAL]] [--config FILE] [--operator USER] [--enable]
#   sudo ./install.sh --image ROOT [--usb-id ...] [--config FILE] [--operator USER] [--enable]
# It checks the board first (Python, its venv module, the port, the operator, free space), makes a new
# virtual environment /opt/raman-edge/venv-VERSION-STAMP from the pinned wheels (pip checks every hash; pip
# itself comes from the wheelhouse, so python3-venv is not needed), then hands over to `raman-device
# install`, which checks the installer, models and configuration, lays out the rest and switches
# /opt/raman-edge/venv to the new environment. If any step fails, the board keeps what it had.
# --image ROOT prepares the root file system of a Raspberry Pi OS image mounted at ROOT instead of this
# system: the same installation, run in a chroot of ROOT (an arm64 image on another machine needs
# qemu-user-static and binfmt-support), with the unit enabled by a link for the first boot when --enable.
# Options are those of `raman-device install --help`.
# RAMAN_EDGE_ROOT=DIR stages the whole installation under DIR instead of / (to inspect it; no root needed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${RAMAN_EDGE_ROOT:-/}
prefix=/opt/raman-edge
python=${PYTHON:-python3}
fail() { echo "install.sh: $*" >&2; exit 1; }
setting() { sed -n "s/^$1=//p" "$here/INSTALLER"; }

[ -f "$here/INSTALLER" ] || fail "$here is not an unpacked offline installer (no INSTALLER); build one with 'make installer'"
want=$(setting python)
target=$(setting target)
version=$(setting version)

# The options this script checks itself; the others go to raman-device install unchanged.
image="" port="" operator="" config=""
n=$#
while [ "$n" -gt 0 ]; do
    arg=$1; shift; n=$((n - 1))
    case $arg in
        --image|--port|--operator|--config)
            [ "$n" -gt 0 ] || fail "$arg needs a value"
            value=$1; shift; n=$((n - 1))
            case $arg in
                --image) image=$value; continue ;;
                --port) port=$value ;;
                --operator) operator=$value ;;
                --config) config=$value ;;
            esac
            set -- "$@" "$arg" "$value" ;;
        *) set -- "$@" "$arg" ;;
    esac
done

[ "$root" != / ] || [ "$(id -u)" = 0 ] || fail "run as root: sudo $0 $*"

if [ -n "$image" ]; then
    # Prepare a mounted image: run this installer inside a chroot of it, with /proc and /dev mounted.
    [ -f "$image/etc/os-release" ] || fail "--image $image: not the root file system of an image (no etc/os-release)"
    [ -z "$port" ] || fail "--image: --port reads the spectrometer of this machine; give --usb-id VID:PID[:SERIAL]"
    [ "$root" = / ] || fail "--image and RAMAN_EDGE_ROOT cannot be used together"
    chroot "$image" /bin/true 2>/dev/null || fail "--image $image: its programs do not run on this machine; for an" \
        "arm64 image on a PC: sudo apt install qemu-user-static binfmt-support"
    inside=/var/tmp/raman-edge-installer.$$
    mkdir -p "$image$inside"
    mounted=""
    cleanup() {
        for m in $mounted; do umount "$image$m" 2>/dev/null || umount -l "$image$m"; done
        rm -rf "$image$inside"
    }
    trap cleanup EXIT
    cp -a "$here/." "$image$inside/"
    for m in /proc /dev; do
        if ! mountpoint -q "$image$m"; then
            if [ "$m" = /proc ]; then mount -t proc proc "$image/proc"; else mount --bind /dev "$image/dev"; fi
            mounted="$m $mounted"
        fi
    done
    env -u PYTHON -u RAMAN_EDGE_ROOT chroot "$image" /bin/sh "$inside/install.sh" "$@"
    exit $?
fi

# Every check before anything is changed.
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || fail "no $python on this system"
if [ "$have" != "$want" ]; then
    . /etc/os-release 2>/dev/null || true
    fail "this installer ($target) is for Python $want, but $python is $have (${PRETTY_NAME:-this system});" \
        "use the installer for this board's release (see README: which installer for which image)"
fi
"$python" -c 'import venv' 2>/dev/null || fail "Python's venv module is missing; bring the package" \
    "python$want-venv (apt download python$want-venv on a machine with network) and install it: sudo dpkg -i python$want-venv_*.deb"
if [ -n "$port" ] && [ ! -c "$port" ]; then
    fail "--port $port: no such serial port on this board; plug the spectrometer in, or give --usb-id VID:PID[:SERIAL]"
fi
if [ -n "$operator" ] && [ "$root" = / ] && ! id -u "$operator" >/dev/null 2>&1; then
    fail "--operator $operator: no such user on this system; create it first (sudo adduser NAME) or leave the option out"
fi
[ -z "$config" ] || [ -r "$config" ] || fail "--config $config: no such file, or it cannot be read"
pipwheel=$(ls "$here"/wheelhouse/pip-*.whl 2>/dev/null | head -n 1)
[ -n "$pipwheel" ] || fail "the installer has no pip wheel in wheelhouse/; it is damaged or too old: build it again"
dest="${root%/}$prefix"
where=$dest
while [ ! -d "$where" ]; do where=$(dirname "$where"); done
need=$(( $(du -sk "$here/wheelhouse" | cut -f1) * 4 + $(du -sk "$here/models" | cut -f1) * 2 ))
free=$(df -Pk "$where" | awk 'NR == 2 { print $4 }')
[ "$free" -ge "$need" ] || fail "not enough space in $where: $((free / 1024)) MB free, $((need / 1024)) MB needed"

# The new environment, removed again unless raman-device install switched to it.
name="venv-$version-$(date +%Y%m%d%H%M%S)-$$"
venv="$dest/$name"
discard() { [ "$(readlink "$dest/venv" 2>/dev/null)" = "$name" ] || rm -rf "$venv"; }
trap discard EXIT
mkdir -p "$dest"
"$python" -m venv --without-pip "$venv" || fail "making the virtual environment $venv failed (see above)"
# -I: isolated from PYTHONPATH and the user's site-packages, so that no raman-edge found there counts as installed
"$venv/bin/python" -I "$pipwheel/pip" install --quiet --disable-pip-version-check --no-index --no-cache-dir \
    --find-links "$here/wheelhouse" --require-hashes -r "$here/wheelhouse/requirements.txt" \
    || fail "installing the wheels failed (see above); the installer may be damaged or for another board"
if "$venv/bin/raman-device" install --from "$here" --root "$root" --venv "$prefix/$name" "$@"; then
    trap - EXIT
else
    status=$?
    echo "install.sh: the installation stopped; the board keeps what it had" >&2
    exit $status
fi
