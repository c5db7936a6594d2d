#!/usr/bin/env bash
# Measures the local X-Ray daemon stand-in: how many traces per second it ingests (each trace a
# BFF-like segment of about 1.5 KB with subsegments, sent over UDP as fast as one sender can),
# and its resident memory holding 10 000 traces. Not part of the test run.
# Usage: scripts/bench-daemon.sh [TRACES]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

traces=${1:-20000}
ensure_wasm_target
step "building the host"
cargo build --release -p xray-host

port=2599
RUST_LOG=warn ./target/release/xray-host daemon --listen 127.0.0.1:$port --max-traces 10000 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true' EXIT
wait_for_port $port 30

python3 - "$port" "$traces" "$daemon" <<'PYTHON'
import json, os, socket, sys, time, urllib.request

port, traces, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def status():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status") as r:
        return json.load(r)

def rss_mib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
now = time.time()
def document(i):
    trace = f"1-{int(now):08x}-{i:024x}"
    sub = lambda n, j: {"id": f"{i:08x}{j:08x}", "name": n, "start_time": now, "end_time": now + 0.001,
                        "namespace": "remote", "http": {"request": {"method": "GET", "url": f"http://127.0.0.1:808{j}/", "traced": True},
                                                         "response": {"status": 200}}}
    return {"trace_id": trace, "id": f"{i:016x}", "name": "BFF", "start_time": now, "end_time": now + 0.003,
            "http": {"request": {"method": "GET", "url": "http://localhost:8080/api/", "user_agent": "bench", "client_ip": "127.0.0.1"},
                     "response": {"status": 200, "content_length": 54}},
            "aws": {"xray": {"sdk": "xray-host", "sdk_version": "0.1.0", "sampling_rule_name": "Default"}},
            "annotations": {"backend": "Backend #1"},
            "subsegments": [{"id": f"{i:08x}ffff0000", "name": "call Backend #1", "start_time": now, "end_time": now + 0.001,
                             "subsegments": [sub("127.0.0.1", 1)]},
                            {"id": f"{i:08x}ffff0001", "name": "call Backend #2", "start_time": now, "end_time": now + 0.001,
                             "subsegments": [sub("127.0.0.1", 2)]}]}

datagrams = [b'{"format":"json","version":1}\n' + json.dumps(document(i)).encode() for i in range(traces)]
size = sum(len(d) for d in datagrams) / len(datagrams)
before = status()["accepted"]
began = time.perf_counter()
for index, datagram in enumerate(datagrams):
    sock.sendto(datagram, ("127.0.0.1", port))
    if index % 50 == 49:
        time.sleep(0.002)  # pace the sender, so the figure is the receiver's, not the kernel's drops
sent_in = time.perf_counter() - began
# Wait until the count stops moving; the ingest time ends at its last change.
last, last_change = status()["accepted"], time.perf_counter()
while time.perf_counter() - last_change < 0.5:
    time.sleep(0.02)
    current = status()["accepted"]
    if current != last:
        last, last_change = current, time.perf_counter()
elapsed = last_change - began
accepted = last - before
print(f"datagrams sent: {traces} of {size:.0f} bytes each, in {sent_in:.2f} s")
print(f"accepted: {accepted} ({traces - accepted} lost in the kernel's socket buffer)")
print(f"ingest: {accepted / elapsed:,.0f} traces/s (first datagram sent to the last accepted)")
print(f"traces kept: {status()['traces']} (bound 10000; {status()['evicted']} evicted)")
print(f"resident memory with {status()['traces']} traces: {rss_mib():.1f} MiB")
PYTHON
