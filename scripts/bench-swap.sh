#!/usr/bin/env bash
# Measures swapping and starting: for Backend #1's service,
#   - swap time, file written -> first response from the new version, for a component never
#     compiled before (cold) and for one in the compile cache (cached), averaged over runs;
#   - the host's own compile-and-swap time for the same (from the admin endpoint's answer);
#   - start-up time to the first response, with a cold and with a warm compile cache.
# Not part of the test run. Usage: scripts/bench-swap.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

runs=${1:-5}
ensure_wasm_target
build_all release

python3 - "$runs" <<'PYTHON'
import json, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request

runs = int(sys.argv[1])
host_binary = "target/release/xray-host"
components = "target/wasm32-wasip2/release"

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def get(port, path="/"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except Exception:
        return None, ""

def start(served, cache, port, admin):
    env = dict(os.environ, RUST_LOG="warn", XRAY_HOST_XRAY="off")
    return subprocess.Popen([host_binary, "serve", "--component", served, "--name", "Backend #1",
                             "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}",
                             "--cache-dir", cache], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def until(condition, timeout=60):
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if condition():
            return time.perf_counter() - began
        time.sleep(0.002)
    raise SystemExit("timed out")

def install(source, target):
    shutil.copy(source, target + ".partial")
    os.rename(target + ".partial", target)

def answers(port, field):
    status, body = get(port)
    return status == 200 and field in body

results = {"swap_cold": [], "swap_cached": [], "reload_cold": [], "reload_cached": [],
           "start_cold": [], "start_warm": []}
for run in range(runs):
    work = tempfile.mkdtemp()
    cache = os.path.join(work, "cache")
    served = os.path.join(work, "service.wasm")
    install(f"{components}/backend1.wasm", served)
    port, admin = free_port(), free_port()
    began = time.perf_counter()
    host = start(served, cache, port, admin)
    until(lambda: answers(port, "currentDate"))
    results["start_cold"].append(time.perf_counter() - began)
    # Swap to a component this cache has never seen, then back to the cached one.
    install(f"{components}/backend2.wasm", served)
    results["swap_cold"].append(until(lambda: answers(port, "currentTime")))
    install(f"{components}/backend1.wasm", served)
    results["swap_cached"].append(until(lambda: answers(port, "currentDate")))
    host.terminate(); host.wait()
    began = time.perf_counter()
    host = start(served, cache, port, admin)
    until(lambda: answers(port, "currentDate"))
    results["start_warm"].append(time.perf_counter() - began)
    host.terminate(); host.wait()
    # The host's own time to compile (or load) and swap, without the file watcher's polling.
    shutil.rmtree(cache)
    port, admin = free_port(), free_port()
    host = start(served, cache, port, admin)
    until(lambda: answers(port, "currentDate"))
    def reload():
        request = urllib.request.Request(f"http://127.0.0.1:{admin}/reload", method="POST",
                                         headers={"X-Xray-Host-Reload": "1"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.load(r)["reloads"][0]["result"]
    # The file is replaced right before asking: the endpoint answers first unless the watcher
    # wins, in which case the result says "unchanged" and that run is left out.
    for key, source in (("reload_cold", "backend2"), ("reload_cached", "backend1")):
        install(f"{components}/{source}.wasm", served)
        result = reload()
        if result["outcome"] == "swapped":
            results[key].append(result["ms"] / 1000)
    host.terminate(); host.wait()
    shutil.rmtree(work)

def show(label, values):
    if not values:
        print(f"{label:58s} {'n/a':>10s}")
        return
    values = sorted(values)
    print(f"{label:58s} {sum(values) / len(values) * 1000:8.1f} ms  (min {values[0] * 1000:.1f}, max {values[-1] * 1000:.1f}, n={len(values)})")

print(f"backend1/backend2 components, {runs} runs")
show("start-up to first response, empty compile cache", results["start_cold"])
show("start-up to first response, warm compile cache", results["start_warm"])
show("swap, file renamed -> first new response, never compiled", results["swap_cold"])
show("swap, file renamed -> first new response, cached", results["swap_cached"])
show("host compile+swap (admin reload), never compiled", results["reload_cold"])
show("host compile+swap (admin reload), cached", results["reload_cached"])
PYTHON
