#!/usr/bin/env bash
# Install everything ctwall's build, demo and tests need on a fresh Debian
# machine (run as root). Idempotent.
set -euo pipefail

pkgs=(
  # kernel reference and namespace topologies
  nftables conntrack iproute2 ethtool iputils-ping tcpdump procps kmod
  # AF_XDP (xsk-rs builds libbpf/libxdp from source with cc)
  clang llvm m4 gcc make binutils libelf-dev zlib1g-dev pkg-config
  # real peers for end-to-end tests
  python3 python3-pyftpdlib curl iperf3 iptables
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# cargo-fuzz (runs on the stable toolchain with RUSTC_BOOTSTRAP=1).
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
