#!/usr/bin/env bash
# Demo: real traffic between two network namespaces (ping, HTTP with curl,
# a UDP exchange) is captured and replayed through ctwall's pipeline with
# the default configuration; prints the per-packet verdicts and the
# conntrack table. Everything stays inside namespaces this script creates.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --bins -q

tag="ctwdemo$$"
a="${tag}a"; b="${tag}b"; work="$(mktemp -d)"
cleanup() {
  [ -n "${dump:-}" ] && kill "$dump" 2>/dev/null || true
  [ -n "${web:-}" ] && kill "$web" 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$a"; ip netns add "$b"
ip link add va netns "$a" type veth peer name vb netns "$b"
ip -n "$a" addr add 10.0.1.2/24 dev va; ip -n "$b" addr add 10.0.1.3/24 dev vb
ip -n "$a" link set va up; ip -n "$b" link set vb up
ip -n "$a" link set lo up; ip -n "$b" link set lo up
# veth offloads TX checksums: captured segments would carry partial sums.
ip netns exec "$a" ethtool -K va tx off >/dev/null
ip netns exec "$b" ethtool -K vb tx off >/dev/null

ip netns exec "$a" tcpdump -q -U -i va -w "$work/demo.pcap" 2>/dev/null & dump=$!
mkdir -p "$work/www"; echo "hello through ctwall" > "$work/www/index.html"
ip netns exec "$b" python3 -m http.server 8080 --bind 10.0.1.3 --directory "$work/www" >/dev/null 2>&1 & web=$!
sleep 1
ip netns exec "$a" ping -c 2 -i 0.2 10.0.1.3 >/dev/null
ip netns exec "$a" curl -s --max-time 5 http://10.0.1.3:8080/ >/dev/null
ip netns exec "$b" python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('10.0.1.3',5353));s.settimeout(5);d,a=s.recvfrom(100);s.sendto(d,a)" & echo_srv=$!
sleep 0.3
ip netns exec "$a" python3 -c "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);s.sendto(b'q',('10.0.1.3',5353));s.recvfrom(100)"
wait "$echo_srv"
sleep 0.5; kill "$dump"; wait "$dump" 2>/dev/null || true; dump=""

echo "== ctwall replay of real traffic captured between two namespaces =="
./target/release/ctwall replay --format text "$work/demo.pcap"
