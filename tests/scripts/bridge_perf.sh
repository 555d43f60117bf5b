#!/usr/bin/env bash
# Throughput of `ctwall run` against the Linux reference, side by side, on the topology of the
# bridge tests (tests/src/bridge.rs): host A (10.0.0.1, a0) | FW (fwin, fwout) | host B
# (10.0.0.2, b0), one subnet, veths, `ethtool -K a0/b0 tx off`.
#
# For each firewall it measures one iperf3 TCP stream A→B (10 s) and 64-byte UDP A→B
# (`iperf3 -u -l 64 -b 0`, 10 s; the offered rate is iperf3's, about 0.15 Mpps here, so this is
# bounded by the generator as much as by the firewall: both offered and delivered are shown).
#
#   ctwall           ctwall run with config/examples/bridge.ron (or $CONFIG)
#   linux+conntrack  Linux bridge + br_netfilter + iptables conntrack rules of the same meaning
#   linux bridge     Linux bridge, no filtering (the ceiling)
#
# Needs root, iproute2, ethtool, iperf3, iptables, python3; not run by `cargo test`.
# Usage: tests/scripts/bridge_perf.sh [-t SECONDS] [--no-ctwall]
#   CTWALL_BIN=path   binary to use (default: build target/release/ctwall)
#   CONFIG=file       ctwall configuration (default config/examples/bridge.ron)
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=10
WITH_CTWALL=1
while (($#)); do
  case "$1" in
    -t) SECS="$2"; shift 2 ;;
    --no-ctwall) WITH_CTWALL=0; shift ;;
    *) echo "usage: $0 [-t SECONDS] [--no-ctwall]" >&2; exit 2 ;;
  esac
done

for tool in ip ethtool iperf3 iptables python3 timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install iperf3 iptables ethtool)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }

P="ctwperf$$"
A="${P}a" F="${P}f" B="${P}b"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for ns in "$A" "$F" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

topology() {
  cleanup_ns
  ip netns add "$A"; ip netns add "$F"; ip netns add "$B"
  for ns in "$A" "$F" "$B"; do ip -n "$ns" link set lo up; done
  ip netns exec "$F" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
  ip -n "$F" link add fwin type veth peer name a0 netns "$A"
  ip -n "$F" link add fwout type veth peer name b0 netns "$B"
  ip -n "$F" link set fwin up
  ip -n "$F" link set fwout up
  ip -n "$A" link set a0 address 02:00:00:00:0a:01
  ip -n "$B" link set b0 address 02:00:00:00:0b:02
  ip -n "$A" addr add 10.0.0.1/24 dev a0
  ip -n "$B" addr add 10.0.0.2/24 dev b0
  ip -n "$A" link set a0 up
  ip -n "$B" link set b0 up
  ip netns exec "$A" ethtool -K a0 tx off >/dev/null
  ip netns exec "$B" ethtool -K b0 tx off >/dev/null
}

cleanup_ns() {
  for ns in "$A" "$F" "$B"; do ip netns del "$ns" 2>/dev/null || true; done
}

linux_bridge() {
  ip -n "$F" link add br0 type bridge
  ip -n "$F" link set fwin master br0
  ip -n "$F" link set fwout master br0
  ip -n "$F" link set br0 up
}

linux_conntrack() {
  linux_bridge
  ip netns exec "$F" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
  ip netns exec "$F" sh -e <<'EOF'
iptables -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
iptables -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp
iptables -P FORWARD DROP
iptables -A FORWARD -m physdev --physdev-in fwin -m conntrack --ctstate INVALID -j DROP
iptables -A FORWARD -m physdev --physdev-in fwin -p tcp ! --syn -m conntrack --ctstate NEW -j DROP
iptables -A FORWARD -m physdev --physdev-in fwin -j ACCEPT
iptables -A FORWARD -m physdev --physdev-in fwout -m conntrack --ctstate INVALID -j DROP
iptables -A FORWARD -m physdev --physdev-in fwout -m conntrack --ctstate ESTABLISHED -j ACCEPT
iptables -A FORWARD -m physdev --physdev-in fwout -m conntrack --ctstate RELATED -j ACCEPT
EOF
}

CTWALL_PID=""
start_ctwall() {
  local cfg="${CONFIG:-config/examples/bridge.ron}"
  if [ ! -f "$cfg" ]; then
    echo "note: $cfg missing, using the bridge tests' example" >&2
    cfg="$WORK/bridge.ron"
    cat >"$cfg" <<'EOF'
(
  interfaces: (inside: "fwin", outside: "fwout"),
  helpers: [(helper: "ftp", ports: [21]), (helper: "tftp", ports: [69])],
  filter: (
    inside_to_outside: (policy: "accept", rules: [
      (name: "invalid", match: (ctstate: ["INVALID"]), action: "drop"),
      (name: "not-syn", match: (ctstate: ["NEW"], proto: "tcp", syn: false), action: "drop"),
    ]),
    outside_to_inside: (policy: "drop", rules: [
      (name: "invalid", match: (ctstate: ["INVALID"]), action: "drop"),
      (name: "est", match: (ctstate: ["ESTABLISHED"]), action: "accept"),
      (name: "rel", match: (ctstate: ["RELATED"]), action: "accept"),
    ]),
  ),
)
EOF
  fi
  ip netns exec "$F" env LIBXDP_SKIP_DISPATCHER=1 RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
    "$CTWALL" run --config "$cfg" --inside fwin --outside fwout >"$WORK/ctwall.log" 2>&1 &
  CTWALL_PID=$!
  PIDS+=("$CTWALL_PID")
  for _ in $(seq 100); do
    grep -q ready "$WORK/ctwall.log" && return 0
    kill -0 "$CTWALL_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "ctwall run did not get ready:" >&2
  cat "$WORK/ctwall.log" >&2
  return 1
}

stop_ctwall() {
  [ -n "$CTWALL_PID" ] || return 0
  kill -TERM "$CTWALL_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$CTWALL_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$CTWALL_PID" 2>/dev/null || true
  wait "$CTWALL_PID" 2>/dev/null || true
  CTWALL_PID=""
}

# iperf3 A→B; prints "tcp_gbps udp_offered_pps udp_delivered_pps udp_loss_pct udp_at_b0_pps".
# udp_delivered is what iperf3's server read; udp_at_b0 is what reached B's interface (on this
# 2-CPU machine the iperf3 server itself overflows its socket buffer well before the bridges
# run out of steam, so the interface count is the bridges' forwarding rate).
measure() {
  ip netns exec "$A" ping -c 3 -i 0.2 -w 5 -q 10.0.0.2 >/dev/null || { echo "ping A->B failed" >&2; return 1; }
  ip netns exec "$B" timeout $((SECS * 3 + 30)) iperf3 -s -B 10.0.0.2 -p 5201 >/dev/null 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  sleep 0.5
  timeout $((SECS + 20)) ip netns exec "$A" iperf3 -c 10.0.0.2 -p 5201 -t "$SECS" -J >"$WORK/tcp.json" || true
  sleep 0.5
  local rx0 rx1
  rx0="$(ip netns exec "$B" cat /sys/class/net/b0/statistics/rx_packets)"
  timeout $((SECS + 20)) ip netns exec "$A" iperf3 -c 10.0.0.2 -p 5201 -u -l 64 -b 0 -t "$SECS" -J >"$WORK/udp.json" || true
  rx1="$(ip netns exec "$B" cat /sys/class/net/b0/statistics/rx_packets)"
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  python3 - "$WORK/tcp.json" "$WORK/udp.json" "$((rx1 - rx0))" <<'EOF'
import json, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
t, u = load(sys.argv[1]), load(sys.argv[2])
tcp = t.get("end", {}).get("sum_received", {}).get("bits_per_second", 0) / 1e9
s = u.get("end", {}).get("sum", {})
secs = s.get("seconds") or 1
sent = u.get("end", {}).get("sum_sent", {}).get("packets") or s.get("packets", 0)
# The receiver's "packets" is the highest sequence number seen; lost_packets counts the gaps.
r = u.get("end", {}).get("sum_received") or s
recv = r.get("packets", 0) - r.get("lost_packets", 0)
loss = 100.0 * (sent - recv) / sent if sent else 100.0
at_b0 = int(sys.argv[3])
print("%.3f %d %d %.1f %d" % (tcp, sent / secs, recv / secs, loss, at_b0 / secs))
EOF
}

declare -A RES
run_mode() {
  local name="$1" setup="$2"
  echo "== $name" >&2
  topology
  if ! $setup; then RES[$name]="0 0 0 100 0"; cleanup_ns; return; fi
  RES[$name]="$(measure || echo "0 0 0 100 0")"
  # The rules were in force: outside may not open connections (except on the plain bridge).
  if ip netns exec "$B" ping -c 2 -i 0.2 -w 2 -q 10.0.0.1 >/dev/null 2>&1; then
    [ "$name" = "linux bridge" ] || echo "WARNING: $name let ping B->A through: rules not in force" >&2
  fi
  [ "$setup" = start_ctwall ] && stop_ctwall
  cleanup_ns
}

if ((WITH_CTWALL)); then
  if [ -z "${CTWALL_BIN:-}" ]; then
    cargo build --release --bin ctwall >&2
    CTWALL="${CARGO_TARGET_DIR:-target}/release/ctwall"
  else
    CTWALL="$CTWALL_BIN"
  fi
  run_mode ctwall start_ctwall
fi
run_mode "linux+conntrack" linux_conntrack
run_mode "linux bridge" linux_bridge

printf '\n%-16s %12s %14s %16s %8s %16s\n' "firewall" "TCP Gbit/s" "UDP64 offered" "UDP64 delivered" "loss %" "UDP64 at B's if"
for name in ctwall "linux+conntrack" "linux bridge"; do
  [ -n "${RES[$name]:-}" ] || continue
  read -r tcp off del loss atb <<<"${RES[$name]}"
  printf '%-16s %12s %14s %16s %8s %16s\n' "$name" "$tcp" "$off pps" "$del pps" "$loss" "$atb pps"
done
if [ -n "${RES[ctwall]:-}" ]; then
  read -r ct _ cu _ ca <<<"${RES[ctwall]}"
  read -r lt _ lu _ la <<<"${RES[linux+conntrack]}"
  python3 -c "
ct, cu, ca, lt, lu, la = $ct, $cu, $ca, $lt, $lu, $la
r = lambda a, b: ('%.2f' % (a / b)) if b else 'n/a'
print('\nctwall / linux+conntrack: TCP %s, UDP64 delivered to iperf3 %s, UDP64 at B\'s interface %s' % (r(ct, lt), r(cu, lu), r(ca, la)))"
fi
