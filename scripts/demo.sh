#!/usr/bin/env bash
# Demo: ctwall as a bump in the wire. Host A (inside) and host B (outside)
# live in their own network namespaces on one subnet; ctwall bridges the
# two veth ports of a third namespace with AF_XDP and the example rules
# (config/examples/bridge.ron: inside may open anything, outside only gets
# answers and RELATED traffic). Real ping (IPv4 and IPv6, with neighbour
# discovery), curl and UDP cross it; traffic the
# rules refuse does not. ctwall also owns 10.0.0.250 on the link (its own
# smoltcp stack): host A pings it and reads the conntrack table over HTTP with
# `ctwall ctl`; SIGUSR1 prints the table on stdout too. Everything stays
# inside namespaces this script creates, and they are deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces, AF_XDP)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --bins -q
ctwall="$PWD/target/release/ctwall"

tag="ctwd$$"
a="${tag}a"; b="${tag}b"; fw="${tag}fw"; work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  ip netns del "$fw" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

# A --- (veth-in | ctwall | veth-out) --- B; the port names match the example config.
ip netns add "$a"; ip netns add "$b"; ip netns add "$fw"
ip link add a0 netns "$a" type veth peer name veth-in netns "$fw"
ip link add b0 netns "$b" type veth peer name veth-out netns "$fw"
ip -n "$a" addr add 10.0.0.1/24 dev a0
ip -n "$b" addr add 10.0.0.2/24 dev b0
ip -n "$a" addr add fd00::1/64 dev a0
ip -n "$b" addr add fd00::2/64 dev b0
for ns in "$a" "$b" "$fw"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set a0 up; ip -n "$b" link set b0 up
ip -n "$fw" link set veth-in up; ip -n "$fw" link set veth-out up
# veth offloads TX checksums; frames through AF_XDP would keep partial sums.
ip netns exec "$a" ethtool -K a0 tx off >/dev/null
ip netns exec "$b" ethtool -K b0 tx off >/dev/null

step "ctwall run --config config/examples/bridge.ron --mgmt 10.0.0.250/24 (in namespace $fw)"
ip netns exec "$fw" env NO_COLOR=1 "$ctwall" run --config config/examples/bridge.ron --mgmt 10.0.0.250/24 \
  >"$work/ctwall.out" 2>"$work/ctwall.log" &
ctw=$!; pids+=("$ctw")
for _ in $(seq 100); do grep -q ready "$work/ctwall.log" && break; sleep 0.1; done
grep ready "$work/ctwall.log" || { cat "$work/ctwall.log"; exit 1; }

mkdir -p "$work/www"; echo "hello through ctwall" > "$work/www/index.html"
ip netns exec "$b" python3 -m http.server 8080 --bind 10.0.0.2 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
ip netns exec "$b" python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('10.0.0.2',5353)); s.settimeout(20)
d,a=s.recvfrom(100); s.sendto(d.upper(),a)" &
pids+=($!)
sleep 1

step "ping A -> B (inside opens: passes)"
ip netns exec "$a" ping -c 3 -i 0.2 -W 1 10.0.0.2 | tail -2
step "ping -6 A -> B (neighbour discovery crosses: the example admits NDP, which conntrack leaves UNTRACKED)"
# Wait for duplicate address detection to finish on both hosts (it crosses the bridge too).
for _ in $(seq 50); do
  [ -z "$(ip -n "$a" -6 addr show dev a0 tentative)$(ip -n "$b" -6 addr show dev b0 tentative)" ] && break
  sleep 0.1
done
ip netns exec "$a" ping -6 -c 3 -i 0.2 -W 1 fd00::2 | tail -2
ip -n "$a" -6 neigh show fd00::2 dev a0
step "ping B -> A (outside may not open: dropped)"
ip netns exec "$b" ping -c 2 -i 0.2 -W 1 10.0.0.1 | tail -2 || true
step "curl from A to the web server on B"
ip netns exec "$a" curl -sS --max-time 5 http://10.0.0.2:8080/
step "UDP question from A, answer from B"
ip netns exec "$a" python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(b'hello',('10.0.0.2',5353)); print('answer:', s.recvfrom(100)[0].decode())"
step "TCP from B to A port 113 (rule out-ident: reject, a RST comes back at once)"
ip netns exec "$b" curl -sS --max-time 3 http://10.0.0.1:113/ 2>&1 || true
step "TCP SYN from B to A port 22 (policy drop: times out)"
ip netns exec "$b" curl -sS --max-time 2 http://10.0.0.1:22/ 2>&1 || true

step "host A pings the firewall's management address and lists its table (ctwall ctl conntrack -L)"
ip netns exec "$a" ping -c 2 -i 0.2 -W 1 10.0.0.250 | tail -2
ip netns exec "$a" "$ctwall" ctl --addr 10.0.0.250 conntrack -L
step "the same in the kernel's /proc/net/nf_conntrack format, and a few metrics"
ip netns exec "$a" curl -sS --max-time 3 http://10.0.0.250/conntrack
ip netns exec "$a" curl -sS --max-time 3 http://10.0.0.250/metrics |
  grep -E "^ctwall_(conntrack_entries|frames_total|rule_packets_total)" | head -12 || true

step "the table on ctwall's stdout (kill -USR1)"
kill -USR1 "$ctw"; sleep 0.5
cat "$work/ctwall.out"

step "stop (SIGTERM): counters and per-rule hits from the log"
kill -TERM "$ctw"; wait "$ctw"
grep -E "counters|rule|stopped" "$work/ctwall.log"
