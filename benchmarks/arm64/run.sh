#!/usr/bin/env bash
# The edge runtime on arm64, checked under emulation against this x86 machine.
#
# Builds (once, cached) an arm64 Debian 12 root with debootstrap, runs it through qemu-user-static,
# installs the checkout's base install there (no extras) in a venv, runs the runtime's tests
# (`python -m pytest -m runtime`), `dermedge info` and `dermedge predict --json` per variant of the
# shipped bundle on a handful of images, does the same predictions with this machine's dermedge, and
# compares the two (labels, boxes, probabilities, masks) into benchmarks/results/arm64/arm64.{json,md}.
#
# What it proves: the base install resolves on arm64 and the runtime gives x86's answers there.
# What it does not: speed. Emulated timings say nothing about a Raspberry Pi's.
#
#   sudo nice -n 19 benchmarks/arm64/run.sh            # about 10-20 min the first time, then minutes
#
# Needs: root (debootstrap, chroot, mounts); Debian's `debootstrap` and `qemu-user-static`
# (apt-get install debootstrap qemu-user-static); network to deb.debian.org and PyPI; the host's
# dermedge installed (the x86 side); and binfmt_misc able to run aarch64 binaries (the script
# registers qemu-aarch64 itself if /proc/sys/fs/binfmt_misc can be mounted: in a container this
# needs the privilege to do so). Without binfmt_misc it stops: qemu-user alone cannot follow the
# guest's exec() of its own programs (pip building a wheel, the tests' subprocesses).
#
# Environment:
#   ARM64_CACHE   where the arm64 root and the work files live (default /var/cache/dermedge-arm64);
#                 kept between runs, never inside the repository. Remove it to rebuild from scratch.
#   ARM64_FRESH_VENV=1  rebuild the guest's venv even if pyproject.toml is unchanged since it was built.
#   ARM64_CPUS    qemu CPU models to run the predictions on (default "cortex-a72 cortex-a76": the
#                 cores of a Raspberry Pi 4 and 5); the tests run on the first.
#   ARM64_IMAGES  a folder of images (default ../shared/data/ham10000/images beside the checkout);
#                 its first ARM64_N (default 9) .jpg/.png files by name. Absent: lesions drawn by
#                 edge_runtime.synthetic. `dermedge predict --example` is always added.
#   DEBIAN_MIRROR (default http://deb.debian.org/debian)
#
# Under qemu-user the guest reads the host's /proc/cpuinfo (x86), and LiteRT's CPU detection then
# crashes when it creates an interpreter; a Raspberry Pi's cpuinfo (kept beside this script) is
# bind-mounted over it. A real Pi shows its own. The host's CA certificates are copied in for pip,
# for networks that re-sign TLS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${ARM64_CACHE:-/var/cache/dermedge-arm64}"
ROOT="$CACHE/root"
CPUS=(${ARM64_CPUS:-cortex-a72 cortex-a76})
IMAGES_SRC="${ARM64_IMAGES:-$REPO/../shared/data/ham10000/images}"
N_IMAGES="${ARM64_N:-9}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
OUT="$REPO/benchmarks/results/arm64"
WORK="$CACHE/work"            # host side of the run's files; the guest sees it as /work
START=$(date +%s)

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'arm64: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "needs debootstrap: apt-get install debootstrap"
command -v qemu-aarch64-static >/dev/null || die "needs qemu-user-static: apt-get install qemu-user-static"
command -v dermedge >/dev/null || die "needs the host's dermedge (pip install -e .) for the x86 side"
HOST_PY="$(dirname "$(readlink -f "$(command -v dermedge)")")/python"
[ -x "$HOST_PY" ] || HOST_PY="$(command -v python3)"
"$HOST_PY" -c "import edge_runtime" 2>/dev/null || HOST_PY=python3

# --- binfmt_misc: the kernel hands aarch64 ELF files to qemu-aarch64-static --------------------
binfmt_ready() { grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; }
if ! binfmt_ready; then
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
    if [ -e /proc/sys/fs/binfmt_misc/register ] && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
        # Debian's entry, with the F flag: the interpreter is opened now, so it works inside the chroot.
        cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null || true
    fi
fi
binfmt_ready || die "cannot register qemu-aarch64 in binfmt_misc (mount -t binfmt_misc binfmt_misc \
/proc/sys/fs/binfmt_misc, then cat /usr/lib/binfmt.d/qemu-aarch64.conf > .../register); \
a container needs the privilege for that"
# Without the F flag the interpreter is looked up inside the root at exec time: put it there.
fix_interpreter() {
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 && return
    local interp; interp=$(sed -n 's/^interpreter //p' /proc/sys/fs/binfmt_misc/qemu-aarch64)
    mkdir -p "$ROOT$(dirname "$interp")"; cp /usr/bin/qemu-aarch64-static "$ROOT$interp"
}

# --- the arm64 root, built once ----------------------------------------------------------------
if [ ! -f "$ROOT/.dermedge-root-ready" ]; then
    say "debootstrap --arch=arm64 $SUITE into $ROOT"
    rm -rf "$ROOT"; mkdir -p "$ROOT"; fix_interpreter
    t0=$(date +%s)
    nice -n 19 debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates "$SUITE" "$ROOT" "$MIRROR" >&2
    echo $(( $(date +%s) - t0 )) > "$ROOT/.dermedge-debootstrap-seconds"
    touch "$ROOT/.dermedge-root-ready"
fi
fix_interpreter

# --- mounts, undone on any exit --------------------------------------------------------------------
MOUNTS=()
cleanup() {
    local i
    for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null \
            || echo "arm64: could not unmount ${MOUNTS[i]}" >&2
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mountpoint -q "$ROOT/proc" && die "$ROOT/proc is mounted already: another run, or one that left it (umount -R $ROOT/proc)"
mount -t proc proc "$ROOT/proc"; MOUNTS+=("$ROOT/proc")
mount --bind /dev "$ROOT/dev"; MOUNTS+=("$ROOT/dev")
mkdir -p "$WORK" "$ROOT/work"
mount --bind "$WORK" "$ROOT/work"; MOUNTS+=("$ROOT/work")
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca-certificates.crt"

# The guest's programs run with a clean environment: nothing of the host's pip or Python settings.
guest() {
    local cpu="$1"; shift
    nice -n 19 chroot "$ROOT" /usr/bin/env -i QEMU_CPU="$cpu" HOME=/root LANG=C.UTF-8 \
        PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1 \
        PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_DEFAULT_TIMEOUT=180 "$@"
}
swap_cpuinfo() {  # the Pi whose cores qemu emulates: Pi 4 (Cortex-A72) or Pi 5 (Cortex-A76)
    local file="$HERE/cpuinfo-pi4.txt"
    [ "$1" = cortex-a76 ] && file="$HERE/cpuinfo-pi5.txt"
    mount --bind "$file" "$ROOT/proc/cpuinfo"; MOUNTS+=("$ROOT/proc/cpuinfo")
}

# --- the images, the same files on both sides ------------------------------------------------------
rm -rf "$WORK"/{images,x86,arm64-*,src}; mkdir -p "$WORK/images" "$WORK/x86"
if [ -d "$IMAGES_SRC" ]; then
    IMAGE_SOURCE="HAM10000 ($(basename "$(dirname "$IMAGES_SRC")")/images, first $N_IMAGES by name)"
    find "$IMAGES_SRC" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.png' \) | sort | awk -v n="$N_IMAGES" 'NR <= n' \
        | while read -r f; do cp "$f" "$WORK/images/"; done
else
    IMAGE_SOURCE="synthetic (edge_runtime.synthetic.draw_lesion, seeds 0..$((N_IMAGES - 1)); no HAM10000 here)"
    "$HOST_PY" - "$WORK/images" "$N_IMAGES" <<'EOF'
import sys
import cv2
import numpy as np
from edge_runtime.synthetic import draw_lesion
for seed in range(int(sys.argv[2])):
    image, _ = draw_lesion(np.random.default_rng(seed), 600, 450, class_index=seed)
    cv2.imwrite(f"{sys.argv[1]}/synthetic_{seed}.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
EOF
fi
[ -n "$(ls "$WORK/images")" ] || die "no images in $IMAGES_SRC"

# --- the checkout, copied (the guest builds and tests its own copy, never the working tree) --------
say "copy the checkout into the root"
mkdir -p "$WORK/src"
git -C "$REPO" ls-files -z -co --exclude-standard -- . ':!runs' \
    | (cd "$REPO" && tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
cp "$HERE/dump_outputs.py" "$WORK/"

# --- the base install in a venv ----------------------------------------------------------------
# Built fresh when pyproject.toml changed since the last run (or ARM64_FRESH_VENV=1); otherwise the
# last run's venv is kept and only the checkout's own package is reinstalled (--no-deps). The stamp
# keeps the fresh build's figures (pyproject hash, install seconds, venv MB before pytest) and its
# pip freeze, so the report always shows those of a clean base install.
CPU0="${CPUS[0]}"
swap_cpuinfo "$CPU0"
STAMP="$ROOT/opt/venv/.dermedge-base-install"
KEY=$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)
if [ "${ARM64_FRESH_VENV:-0}" = 1 ] || [ "$(sed -n 1p "$STAMP" 2>/dev/null)" != "$KEY" ]; then
    say "venv and base install (pip install <checkout>, no extras) on $CPU0"
    t0=$(date +%s)
    guest "$CPU0" rm -rf /opt/venv
    guest "$CPU0" python3 -m venv /opt/venv
    guest "$CPU0" pip install --no-cache-dir --quiet /work/src >&2
    INSTALL_S=$(( $(date +%s) - t0 ))
    VENV_MB=$(du -sm "$ROOT/opt/venv" | cut -f1)
    guest "$CPU0" pip freeze > "$ROOT/opt/venv/.dermedge-pip-freeze-base.txt"
    guest "$CPU0" pip install --no-cache-dir --quiet pytest hypothesis >&2
    printf '%s\n%s\n%s\n' "$KEY" "$INSTALL_S" "$VENV_MB" > "$STAMP"
else
    say "venv kept (pyproject.toml unchanged); reinstall the checkout's package only, on $CPU0"
    guest "$CPU0" pip install --no-cache-dir --quiet --no-deps --force-reinstall /work/src >&2
fi
INSTALL_S=$(sed -n 2p "$STAMP"); VENV_MB=$(sed -n 3p "$STAMP")
cp "$ROOT/opt/venv/.dermedge-pip-freeze-base.txt" "$WORK/pip-freeze-base.txt"
guest "$CPU0" python - > "$WORK/guest.json" <<'EOF'
import json, platform, sys
from importlib.metadata import version
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                  "os": open("/etc/debian_version").read().strip(),
                  "packages": {p: version(p) for p in ("dermedge", "numpy", "opencv-python-headless",
                                                       "ai-edge-litert")},
                  "tensorflow_installed": any(l.lower().startswith("tensorflow")
                                              for l in open("/work/pip-freeze-base.txt"))}))
EOF

# --- the runtime's tests -----------------------------------------------------------------------
# PYTHONSAFEPATH=1: `python -m` would put the checkout first on sys.path, and its dermedge/ folder
# (the shared floor only; train/, export/, commands/ are mapped in by pyproject's package-dir) would
# hide the installed package: "No module named 'dermedge.commands'". The tests test the install.
# DERMEDGE_TEST_TIME_SCALE=30: the tests' hang guards (tests/time_limits.py) grow 30-fold under qemu.
say "python -m pytest -m runtime (arm64, $CPU0)"
t0=$(date +%s)
set +e
guest "$CPU0" sh -c 'cd /work/src && PYTHONSAFEPATH=1 DERMEDGE_TEST_TIME_SCALE=30 python -m pytest -m runtime -q -p no:cacheprovider \
    --junitxml=/work/runtime-tests.xml' > "$WORK/runtime-tests.log" 2>&1
TESTS_RC=$?
set -e
TESTS_S=$(( $(date +%s) - t0 ))
tail -n 3 "$WORK/runtime-tests.log" >&2
guest "$CPU0" dermedge info > "$WORK/info.txt" 2>&1 || die "dermedge info failed on arm64: $(tail -3 "$WORK/info.txt")"

# --- predictions: x86 here, then arm64 per CPU model ------------------------------------------------
VARIANTS=$("$HOST_PY" -c "import json,edge_runtime.bundle as b; print(' '.join(b.load_bundle(None).variants))")
IMGS=$(cd "$WORK/images" && ls | tr '\n' ' ')   # one line: it goes into `sh -c` strings below
say "x86 predictions ($VARIANTS)"
for v in $VARIANTS; do
    (cd "$WORK/images" && nice -n 19 dermedge predict $IMGS --variant "$v" --threads 1 --json "$WORK/x86/$v.json" >/dev/null)
    nice -n 19 dermedge predict --example --variant "$v" --threads 1 --json "$WORK/x86/$v.example.json" >/dev/null
    (cd "$WORK/images" && nice -n 19 "$HOST_PY" "$WORK/dump_outputs.py" --variant "$v" --threads 1 --example \
        --out "$WORK/x86/$v.npz" $IMGS) >&2
done
PREDICT_S=()
for cpu in "${CPUS[@]}"; do
    swap_cpuinfo "$cpu"
    say "arm64 predictions on $cpu"
    mkdir -p "$WORK/arm64-$cpu"
    t0=$(date +%s)
    for v in $VARIANTS; do
        guest "$cpu" sh -c "cd /work/images && dermedge predict $IMGS --variant $v --threads 1 \
            --json /work/arm64-$cpu/$v.json" >/dev/null
        guest "$cpu" dermedge predict --example --variant "$v" --threads 1 \
            --json "/work/arm64-$cpu/$v.example.json" >/dev/null
        guest "$cpu" sh -c "cd /work/images && python /work/dump_outputs.py --variant $v --threads 1 --example \
            --out /work/arm64-$cpu/$v.npz $IMGS" >&2
    done
    PREDICT_S+=("$cpu=$(( $(date +%s) - t0 ))")
done

# --- the comparison -----------------------------------------------------------------------------
say "compare"
"$HOST_PY" - "$WORK/run.json" <<EOF
import json, platform, sys
json.dump({"host": {"machine": platform.machine(), "python": platform.python_version()},
           "suite": "$SUITE", "cpus": "${CPUS[*]}".split(), "variants": "$VARIANTS".split(),
           "image_source": """$IMAGE_SOURCE""", "venv_mb": $VENV_MB, "install_s": $INSTALL_S,
           "debootstrap_s": int(open("$ROOT/.dermedge-debootstrap-seconds").read() or 0),
           "tests_s": $TESTS_S, "tests_rc": $TESTS_RC,
           "predict_s": {k: int(v) for k, v in (p.split("=") for p in "${PREDICT_S[*]}".split())},
           "wall_s": $(( $(date +%s) - START ))}, open(sys.argv[1], "w"))
EOF
"$HOST_PY" "$HERE/compare.py" --work "$WORK" --out "$OUT"
[ "$TESTS_RC" = 0 ] || die "the runtime's tests failed on arm64 (exit $TESTS_RC): $WORK/runtime-tests.log"
