#!/usr/bin/env bash
# Installs what grrm needs on a fresh Debian/Ubuntu machine, or says exactly what to run:
#   - a Rust toolchain (cargo) — printed, never installed behind your back;
#   - a Vulkan driver: when no GPU adapter exists, Mesa's lavapipe (CPU) driver, from
#     bookworm-backports on Debian 12 (Mesa 25: 5-10x faster compute than bookworm's 22.3)
#     with a fallback to the distribution's Mesa;
#   - python3 and npm are used by tests (a Python reward plug-in, the Qwen3 tokenizer fetch);
#   - nats-server (JetStream), which the remote-rollout tests start on loopback.
# Idempotent: a second run does nothing.
set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }
is_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
    if is_root; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    else
        say "missing: run  sudo apt-get install -y $*"
        exit 1
    fi
}

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found. Install Rust first:"
    say "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\""
    exit 1
fi

# A Vulkan ICD is what wgpu needs; GPU vendors install theirs with the driver.
have_icd() {
    local f found=no extra="${VK_DRIVER_FILES:-}:${VK_ICD_FILENAMES:-}"
    for f in /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json ${extra//:/ }; do
        [ -f "$f" ] && found=yes
    done
    [ "$found" = yes ] && ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'
}

if have_icd; then
    say "Vulkan driver present"
else
    say "no Vulkan driver found: installing Mesa's lavapipe (CPU) Vulkan driver"
    if ! is_root; then
        say "run as root, or:  sudo apt-get update && sudo apt-get install -y mesa-vulkan-drivers libvulkan1"
        exit 1
    fi
    . /etc/os-release
    installed=no
    if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
        echo 'deb http://deb.debian.org/debian bookworm-backports main' \
            >/etc/apt/sources.list.d/grrm-backports.list
        if apt-get update -q && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q -t bookworm-backports mesa-vulkan-drivers libvulkan1; then
            installed=yes
        else
            say "bookworm-backports unreachable: falling back to the distribution's Mesa (slower compute)"
            rm -f /etc/apt/sources.list.d/grrm-backports.list
        fi
    fi
    if [ "$installed" = no ]; then
        apt-get update -q
        apt_install mesa-vulkan-drivers libvulkan1
    fi
fi

command -v python3 >/dev/null 2>&1 || apt_install python3
# The remote-rollout tests start a real NATS server with JetStream on loopback.
if ! command -v nats-server >/dev/null 2>&1; then
    say "installing nats-server (remote rollout workers and their tests)"
    if is_root; then apt-get update -q || true; fi
    apt_install nats-server
fi
say "ready"
