#!/usr/bin/env python3
"""Runs the benchmarks side by side and prints the table; writes results.csv and results.png.

Started by scripts/bench.sh, which builds and installs what this needs first. Three sections:

1. The whole application, GET /api/ (BFF -> backend 1 -> backend 2), every request traced and
   its segments sent over UDP to a sink: xray-host as three processes (as on ECS) and as one
   process (the BFF's calls to the backends in process), and as one process serving the
   original's languages (the JavaScript BFF and the Python backends, componentize-js and
   componentize-py), against the original sample's stack (Express, Flask, Django with the
   official X-Ray SDKs) under gunicorn and under the development servers it shipped with.
2. One component, backend 2's GET / (its standalone build, a spin-sdk 7 WASI 0.3 component that
   imports WASI only): xray-host traced (instances reused, as wasmtime serve does for WASI 0.3),
   with X-Ray off, and with reuse off (a fresh instance per request); `wasmtime serve` on the
   same file with its default reuse (the anchor); and a native hyper server.
3. The original's languages one component at a time: the Python backend 2 on WASI 0.2 (a fresh
   instance per request, and reuse) and on WASI 0.3 (reuse, 16 at once), and the JavaScript BFF
   in front of the Rust backends, with the Rust BFF's row beside it.
4. Export modes: the same component traced with its segments sent as UDP datagrams (`xray`),
   as OTLP/HTTP protobuf spans (`otlp`, to a sink that answers 200), and both, against X-Ray
   off: the server's CPU time per request (user + system, from /proc), as a ratio to X-Ray off.
5. Observability modes: the same component traced, with the host's log as text or JSON (with
   and without an access-log line per request, the one line the host writes per request) and
   with the request metrics written as CloudWatch EMF lines, against all of them off: the
   server's CPU time per request, as a ratio to that.
6. Serverless figures: process start to the first 200 (with and without the compiled-component
   cache), resident memory of an idle host, and the criterion figures of one request through
   the instance pool and the tracing hot paths (from target/criterion).

Variants of a section run in interleaved rounds (A B C D, C A D B, ...: every round in a new
order) and each figure is the median of the rounds, so a noisy moment hits every variant alike. With two or more cores the
load generator, the UDP sink and the DynamoDB stand-in run on core 0 and the servers under test
on the others.
"""

import argparse
import csv
import http.client
import http.server
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"
# As shipped (the PGO build, target/pgo), unless scripts/bench.sh was asked for another profile.
HOST = TARGET / os.environ.get("XRAY_HOST_BENCH_PROFILE", "pgo") / "xray-host"
NATIVE = TARGET / "release" / "native-backend2"
WASM = TARGET / "wasm32-wasip2" / "release"
STANDALONE = TARGET / "bench" / "backend2-standalone.wasm"
WASMTIME = ROOT / ".local" / "tools" / "bin" / "wasmtime"
VENV = ROOT / ".local" / "bench" / "venv" / "bin"
NODE_MODULES = ROOT / ".local" / "bench" / "node" / "node_modules"
ORIGINAL = ROOT / "bench" / "original-stack"

SAMPLE_ALL = {"version": 2, "default": {"fixed_target": 0, "rate": 1.0}, "rules": []}


def cores():
    """(cores for the load generator and stand-ins, cores for the servers under test)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return str(available[0]), ",".join(str(c) for c in available[1:])


LOAD_CORES, SERVER_CORES = cores()


def pinned(command, which):
    """`command` run on the given cores with taskset, when the machine has two or more."""
    if which is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", which] + command


# ---------------------------------------------------------------------------------------------
# Processes and measurements


def descendants(pid):
    """`pid` and every process below it."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(descendants(int(child)))
    return found


def cpu_seconds(pids):
    """User + system CPU time the processes have used, seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            # Fields 14 and 15 (utime, stime) after the command name in parentheses.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / ticks


def proportional_kib(pid):
    """Proportional set size (shared pages split among their users) of one process, KiB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Stack:
    """Processes serving one variant, started together and measured together."""

    def __init__(self, name, url, log_dir):
        self.name = name
        self.url = url
        self.log_dir = log_dir
        self.processes = []

    def start(self, command, env=None, cwd=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        # The child keeps its own copy of the log's descriptor; ours closes with the block.
        with open(self.log_dir / f"{slug(self.name)}-{len(self.processes)}.log", "wb") as log:
            process = subprocess.Popen(
                pinned([str(c) for c in command], SERVER_CORES),
                env=full_env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def cpu_seconds(self):
        """CPU time of all the stack's processes so far, seconds."""
        return cpu_seconds(pid for p in self.processes for pid in descendants(p.pid))

    def memory_kib(self):
        """Proportional resident memory of all the stack's processes, KiB."""
        return sum(
            proportional_kib(pid) for p in self.processes for pid in descendants(p.pid)
        )

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def get_status(url, timeout=2.0):
    """The status of GET url, or None when nothing answers."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    try:
        connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
        connection.request("GET", "/" + path)
        status = connection.getresponse().status
        connection.close()
        return status
    except (OSError, http.client.HTTPException):
        return None


def wait_ready(stack, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in stack.processes:
            if process.poll() is not None:
                raise SystemExit(
                    f"{stack.name}: a process exited with {process.returncode} "
                    f"(logs in {stack.log_dir})"
                )
        if get_status(stack.url) == 200:
            return
        time.sleep(0.05)
    raise SystemExit(f"{stack.name}: {stack.url} did not answer 200 in {seconds}s")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def latency_ms(text):
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def run_wrk(url, seconds, connections):
    """One wrk run: requests/s, p50 and p99 in ms, and failed requests."""
    command = pinned(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url], LOAD_CORES
    )
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"errors": 0}
    for line in output.splitlines():
        fields = line.split()
        if line.startswith("Requests/sec:"):
            result["rps"] = float(fields[1])
        elif fields[:1] == ["50%"]:
            result["p50"] = latency_ms(fields[1])
        elif fields[:1] == ["99%"]:
            result["p99"] = latency_ms(fields[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            result["errors"] += int(fields[-1])
        elif line.strip().startswith("Socket errors:"):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
        elif "requests in" in line:
            result["requests"] = int(fields[0])
    return result


class MemoryPeak(threading.Thread):
    """Samples a stack's memory every 200 ms while the load runs; keeps the peak."""

    def __init__(self, stack):
        super().__init__(daemon=True)
        self.stack = stack
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            self.peak = max(self.peak, self.stack.memory_kib())

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.stack.memory_kib())
        return self.peak


class UdpSink(threading.Thread):
    """The daemon stand-in for the load runs: counts datagrams and drops them."""

    def __init__(self):
        super().__init__(daemon=True)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self.socket.bind(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.socket.getsockname()[1]
        self.count = 0

    def run(self):
        while True:
            self.socket.recv(65536)
            self.count += 1


def measure(stacks, rounds, seconds, connections, sink):
    """Interleaved rounds over the stacks, all running; per stack the medians."""
    results = {stack.name: [] for stack in stacks}
    segments = {stack.name: 0 for stack in stacks}
    cpu = {stack.name: 0.0 for stack in stacks}
    for stack in stacks:
        run_wrk(stack.url, 3, connections)  # warm-up: connections, caches, JITs
    # The order is shuffled every round (seeded, so a run can be repeated): a variant that
    # always ran right after the heaviest one would carry its after-effects (page cache,
    # frequency, the sink's backlog) in every round.
    order = random.Random(20261203)
    for round_number in range(rounds):
        for stack in order.sample(stacks, len(stacks)):
            before = sink.count
            cpu_before = stack.cpu_seconds()
            result = run_wrk(stack.url, seconds, connections)
            time.sleep(0.3)  # the last segments reach the sink
            cpu[stack.name] += stack.cpu_seconds() - cpu_before
            segments[stack.name] += sink.count - before
            results[stack.name].append(result)
            print(
                f"  round {round_number + 1}/{rounds} {stack.name}: "
                f"{result['rps']:.0f} req/s, p99 {result['p99']:.2f} ms",
                flush=True,
            )
    summary = {}
    for stack in stacks:
        runs = results[stack.name]
        requests = sum(r.get("requests", 0) for r in runs)
        summary[stack.name] = {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "requests": requests,
            "segments_per_request": segments[stack.name] / requests if requests else 0,
            # Includes the 0.3 s after each run, when the exporters send what is queued.
            "cpu_us_per_request": cpu[stack.name] / requests * 1e6 if requests else 0,
        }
    return summary


def measure_memory(start_stack, seconds, connections):
    """Peak memory of one stack running alone under load, MiB.

    Alone, because the proportional set size splits a shared page among every process mapping
    it: with other stacks of the same programs running, each would look smaller than it is.
    """
    stack = start_stack()
    try:
        wait_ready(stack)
        run_wrk(stack.url, 2, connections)
        sampler = MemoryPeak(stack)
        sampler.start()
        result = run_wrk(stack.url, seconds, connections)
        peak = sampler.stop()
    finally:
        stack.stop()
    print(f"  {stack.name}: {peak / 1024:.1f} MiB at {result['rps']:.0f} req/s", flush=True)
    return peak / 1024, result["errors"]


def run_section(title, factories, args, sink):
    """Throughput and latency with every variant running (interleaved), then memory, alone."""
    print(f"\n== {title}")
    stacks = [factory() for factory in factories]
    try:
        for stack in stacks:
            wait_ready(stack)
        summary = measure(stacks, args.rounds, args.seconds, args.connections, sink)
    finally:
        for stack in stacks:
            stack.stop()
    print("  memory, each variant alone under the same load:")
    for name, factory in zip(summary, factories):
        memory, errors = measure_memory(factory, args.seconds, args.connections)
        summary[name]["memory_mib"] = memory
        summary[name]["errors"] += errors
    return summary


# ---------------------------------------------------------------------------------------------
# The variants


def host_command(component, port, name, rules, *extra):
    return [
        HOST, "serve", "--component", component, "--listen", f"127.0.0.1:{port}",
        "--name", name, "--no-watch", "--sampling-rules", rules, *extra,
    ]


def ours_three_processes(log_dir, base, rules, sink, cache):
    stack = Stack("xray-host, 3 processes (as on ECS)", f"http://127.0.0.1:{base}/api/", log_dir)
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "XRAY_HOST_CACHE_DIR": cache}
    b1, b2 = base + 1, base + 2
    for port, name, wasm in [(b1, "Backend #1", "backend1.wasm"), (b2, "Backend #2", "backend2.wasm")]:
        stack.start(
            host_command(WASM / wasm, port, name, rules, "--env", "RECORD_LAST_ACCESS=off",
                         "--table-store", f"{cache}/tables-{port}.redb"),
            env,
        )
    stack.start(
        host_command(
            WASM / "bff.wasm", base, "BFF", rules,
            "--env", f"BACKEND_1_URL=http://127.0.0.1:{b1}",
            "--env", f"BACKEND_2_URL=http://127.0.0.1:{b2}",
            "--allow-outbound", f"http://127.0.0.1:{b1}",
            "--allow-outbound", f"http://127.0.0.1:{b2}",
            "--table-store", f"{cache}/tables-{base}-bff.redb",
        ),
        env,
    )
    return stack


def ours_one_process(log_dir, base, rules, sink, cache,
                     components=("bff.wasm", "backend1.wasm", "backend2.wasm"),
                     label="xray-host, 1 process (xray-host run)", backend_keys="",
                     bff_keys=""):
    stack = Stack(label, f"http://127.0.0.1:{base}/api/", log_dir)
    b1, b2 = base + 1, base + 2
    bff, backend1, backend2 = (WASM / c for c in components)
    manifest = log_dir / f"one-process-{base}.toml"
    manifest.write_text(
        f"""
[[service]]
name = "BFF"
component = "{bff}"
env = {{ BACKEND_1_URL = "http://127.0.0.1:{b1}", BACKEND_2_URL = "http://127.0.0.1:{b2}" }}
allow_outbound = ["http://127.0.0.1:{b1}", "http://127.0.0.1:{b2}"]
{bff_keys}

[[service]]
name = "Backend #1"
component = "{backend1}"
listen = "127.0.0.1:{b1}"
env = {{ RECORD_LAST_ACCESS = "off" }}
{backend_keys}

[[service]]
name = "Backend #2"
component = "{backend2}"
listen = "127.0.0.1:{b2}"
env = {{ RECORD_LAST_ACCESS = "off" }}
{backend_keys}

[frontend]
listen = "127.0.0.1:{base}"
dir = "{ROOT / 'frontend'}"
routes = {{ "/api" = "BFF" }}
"""
    )
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "XRAY_HOST_CACHE_DIR": cache}
    stack.start(
        [HOST, "run", "--manifest", manifest, "--no-watch", "--sampling-rules", rules,
         "--table-store", f"{cache}/tables-{base}.redb"],
        env,
    )
    return stack


def original(log_dir, base, rules, sink, production):
    label = "gunicorn + node" if production else "dev servers, as shipped"
    stack = Stack(f"original stack, {label}", f"http://127.0.0.1:{base}/api/", log_dir)
    b1, b2 = base + 1, base + 2
    env = {
        "AWS_XRAY_DAEMON_ADDRESS": sink.address,
        "BENCH_SAMPLING_RULES": rules,
        "RECORD_LAST_ACCESS": "off",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if production:
        # gunicorn's documented starting point is 2 x cores + 1 workers; one core serves all
        # three services here, so two workers each.
        stack.start(
            [VENV / "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{b1}", "app:app"],
            env, cwd=ORIGINAL / "backend1",
        )
        stack.start(
            [VENV / "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{b2}", "project.wsgi"],
            {**env, "DJANGO_DEBUG": "0"}, cwd=ORIGINAL / "backend2",
        )
    else:
        stack.start([VENV / "python", "app.py"], {**env, "PORT": str(b1)}, cwd=ORIGINAL / "backend1")
        stack.start(
            [VENV / "python", "manage.py", "runserver", "--noreload", f"127.0.0.1:{b2}"],
            {**env, "DJANGO_DEBUG": "1"}, cwd=ORIGINAL / "backend2",
        )
    stack.start(
        ["node", ORIGINAL / "bff" / "server.js"],
        {
            **env,
            "PORT": str(base),
            "NODE_PATH": str(NODE_MODULES),
            "NODE_ENV": "production" if production else "development",
            "BACKEND_1_URL": f"http://127.0.0.1:{b1}/",
            "BACKEND_2_URL": f"http://127.0.0.1:{b2}/",
        },
    )
    return stack


def whole_application_factories(log_dir, rules, sink, cache):
    """The whole application under each stack, as functions that start it: ours (three
    processes, one process, one process in the original's languages with the Python backends
    on WASI 0.3 and on WASI 0.2), then the original's (gunicorn, then the dev servers)."""
    return [
        lambda: ours_three_processes(log_dir, 18100, rules, sink, cache),
        lambda: ours_one_process(log_dir, 18110, rules, sink, cache),
        lambda: ours_one_process(
            log_dir, 18140, rules, sink, cache,
            components=("bff-js.wasm", "backend1-py.wasm", "backend2-py.wasm"),
            label="xray-host, JS BFF + Python backends, 1 proc",
            # The Python backends keep their interpreter between requests (one at a time, as
            # WASI 0.2 instances serve); the JavaScript BFF cannot (docs/javascript-components.md).
            backend_keys="max_instance_reuse_count = 128"),
        lambda: ours_one_process(
            log_dir, 18150, rules, sink, cache,
            components=("bff-js.wasm", "backend1-py-p2.wasm", "backend2-py-p2.wasm"),
            label="xray-host, JS BFF + Python (WASI 0.2) backends",
            backend_keys="max_instance_reuse_count = 128"),
        lambda: original(log_dir, 18120, rules, sink, production=True),
        lambda: original(log_dir, 18130, rules, sink, production=False),
    ]


def whole_application_pairs(whole):
    """(ours, original) pairs to compare: each of ours against gunicorn, then against the dev
    servers; the original's two variants come last in `whole`."""
    names = list(whole)
    ours, (gunicorn, dev) = names[:-2], names[-2:]
    return [(name, gunicorn) for name in ours] + [(name, dev) for name in ours]


def one_component_factories(log_dir, rules, sink, cache):
    """Backend 2's GET / under each host, as functions that start it."""
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "XRAY_HOST_CACHE_DIR": cache}

    def variant(name, port, command):
        def start():
            stack = Stack(name, f"http://127.0.0.1:{port}/", log_dir)
            stack.start(command, env)
            return stack

        return start

    return [
        variant("xray-host, traced", 18201,
                host_command(STANDALONE, 18201, "Backend #2", rules,
                             "--table-store", f"{cache}/t1.redb")),
        variant("xray-host, X-Ray off", 18202,
                host_command(STANDALONE, 18202, "Backend #2", rules, "--xray", "off",
                             "--table-store", f"{cache}/t2.redb")),
        variant("xray-host, traced, reuse off", 18206,
                host_command(STANDALONE, 18206, "Backend #2", rules,
                             "--max-instance-reuse-count", "1",
                             "--table-store", f"{cache}/t4.redb")),
        variant("xray-host, traced, backend2 as shipped", 18203,
                host_command(WASM / "backend2.wasm", 18203, "Backend #2", rules,
                             "--env", "RECORD_LAST_ACCESS=off",
                             "--table-store", f"{cache}/t3.redb")),
        variant("wasmtime serve", 18204, wasmtime_serve(18204)),
        # With epoch interruption on, as our deadlines need: like for like with ours.
        variant("wasmtime serve -Wtimeout=30s", 18207, wasmtime_serve(18207, "-Wtimeout=30s")),
        variant("native hyper (ceiling)", 18205, [NATIVE, "127.0.0.1:18205"]),
    ]


def polyglot_component_factories(log_dir, rules, sink, cache):
    """The original's languages one component at a time: the Python backend 2 (GET /) on WASI
    0.2 with a fresh instance per request and with reuse, and on WASI 0.3 with reuse; the
    JavaScript BFF (GET /api/) in front of the Rust backends, in one process, so that its row
    differs from the Rust application's by the BFF alone."""
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "XRAY_HOST_CACHE_DIR": cache}

    def python(name, port, component, *extra):
        def start():
            stack = Stack(name, f"http://127.0.0.1:{port}/", log_dir)
            stack.start(host_command(WASM / component, port, "Backend #2", rules,
                                     "--env", "RECORD_LAST_ACCESS=off",
                                     "--table-store", f"{cache}/p{port}.redb", *extra), env)
            return stack

        return start

    return [
        python("Python backend 2, WASI 0.2, fresh instance", 18501, "backend2-py-p2.wasm",
               "--max-instance-reuse-count", "1"),
        python("Python backend 2, WASI 0.2, reuse 128", 18502, "backend2-py-p2.wasm",
               "--max-instance-reuse-count", "128"),
        python("Python backend 2, WASI 0.3, reuse 128 / 16", 18503, "backend2-py.wasm",
               "--max-instance-reuse-count", "128",
               "--max-instance-concurrent-reuse-count", "16"),
        lambda: ours_one_process(
            log_dir, 18510, rules, sink, cache,
            components=("bff-js.wasm", "backend1.wasm", "backend2.wasm"),
            label="JS BFF + Rust backends, no warm pool", bff_keys="warm_instances = 0"),
        lambda: ours_one_process(
            log_dir, 18530, rules, sink, cache,
            components=("bff-js.wasm", "backend1.wasm", "backend2.wasm"),
            label="JS BFF + Rust backends, warm pool (2)", bff_keys="warm_instances = 2"),
        lambda: ours_one_process(
            log_dir, 18520, rules, sink, cache,
            label="Rust BFF + Rust backends (for reference)"),
    ]


class OtlpSink(threading.Thread):
    """An OTLP/HTTP endpoint for the load runs: answers every POST 200 with an empty
    ExportTraceServiceResponse (an empty body is one, in protobuf) and counts the bodies."""

    def __init__(self):
        super().__init__(daemon=True)
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.count += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.count = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = "http://127.0.0.1:%d" % self.server.server_address[1]

    def run(self):
        self.server.serve_forever()


def export_mode_factories(log_dir, rules, sink, otlp, cache):
    """Backend 2's GET / with each trace exporter, and with X-Ray off."""

    def variant(name, port, exporters, *extra):
        env = {
            "AWS_XRAY_DAEMON_ADDRESS": sink.address,
            "XRAY_HOST_CACHE_DIR": cache,
            "OTEL_TRACES_EXPORTER": exporters,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            # The SDKs' default batch of 512 spans, sent at least every second.
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        }

        def start():
            stack = Stack(name, f"http://127.0.0.1:{port}/", log_dir)
            stack.start(host_command(STANDALONE, port, "Backend #2", rules,
                                     "--table-store", f"{cache}/e{port}.redb", *extra), env)
            return stack

        return start

    return [
        variant("X-Ray off", 18301, "xray", "--xray", "off"),
        variant("xray (UDP segments)", 18302, "xray"),
        variant("otlp (OTLP/HTTP protobuf)", 18303, "otlp"),
        variant("xray + otlp", 18304, "xray,otlp"),
    ]


def observability_mode_factories(log_dir, rules, sink, otlp, cache):
    """Backend 2's GET /, traced, with each log format and metrics export, against both off."""
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address, "XRAY_HOST_CACHE_DIR": cache,
           "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint}

    def variant(name, port, *extra):
        def start():
            stack = Stack(name, f"http://127.0.0.1:{port}/", log_dir)
            stack.start(host_command(STANDALONE, port, "Backend #2", rules,
                                     "--table-store", f"{cache}/o{port}.redb", *extra), env)
            return stack

        return start

    return [
        variant("logs text, metrics none", 18401, "--log-format", "text", "--metrics", "none"),
        variant("logs json", 18402, "--log-format", "json", "--metrics", "none"),
        variant("access log, text", 18403, "--access-log", "--log-format", "text",
                "--metrics", "none"),
        variant("access log, json", 18404, "--access-log", "--log-format", "json",
                "--metrics", "none"),
        # A 10 s interval rather than the default minute, so that a run writes lines too.
        variant("metrics emf (every 10 s)", 18405, "--log-format", "text", "--metrics", "emf",
                "--metrics-interval", "10s"),
        variant("logs json + metrics emf", 18406, "--log-format", "json", "--metrics", "emf",
                "--metrics-interval", "10s"),
        variant("metrics otlp (every 10 s)", 18407, "--log-format", "text", "--metrics", "otlp",
                "--metrics-interval", "10s"),
    ]


def print_cpu_table(title, summary, baseline):
    print(f"\n{title}")
    header = f"{'variant':44} {'req/s':>9} {'p99 ms':>8} {'CPU us/req':>11} {'x off':>7} {'errors':>7}"
    print(header)
    print("-" * len(header))
    base = summary[baseline]["cpu_us_per_request"]
    for name, s in summary.items():
        print(
            f"{name:44} {s['rps']:9.0f} {s['p99']:8.2f} {s['cpu_us_per_request']:11.1f} "
            f"{s['cpu_us_per_request'] / base:7.2f} {s['errors']:7d}"
        )


def wasmtime_serve(port, *options):
    """`wasmtime serve` on the standalone backend 2, with the pooling allocator as ours uses and
    its default instance reuse (for a WASI 0.3 component: 128 requests, 16 at once)."""
    return [WASMTIME, "serve", "-Scli", "-Opooling-allocator", *options,
            "--addr", f"127.0.0.1:{port}", STANDALONE]


# ---------------------------------------------------------------------------------------------
# Serverless figures


def first_200_ms(command, url, env=None):
    """Milliseconds from spawning `command` to its first 200 on `url`; the process is stopped."""
    full_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        pinned([str(c) for c in command], SERVER_CORES), env=full_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        while get_status(url, timeout=1.0) != 200:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode} before answering")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{command[0]} did not answer within 60 s")
            time.sleep(0.002)
        return (time.perf_counter() - started) * 1e3
    finally:
        os.killpg(process.pid, 15)
        process.wait()


def idle_memory_mib(command, url, env=None):
    """Resident memory (PSS) of a server after start-up and one request, MiB."""
    stack = Stack("idle", url, Path(tempfile.mkdtemp()))
    stack.start(command, env)
    try:
        wait_ready(stack)
        time.sleep(1.0)
        return stack.memory_kib() / 1024
    finally:
        stack.stop()


def serverless(repeats, sink, rules):
    port = 18301
    url = f"http://127.0.0.1:{port}/"
    rows = []
    work = Path(tempfile.mkdtemp(prefix="xray-host-bench-"))
    env = {"AWS_XRAY_DAEMON_ADDRESS": sink.address}

    def ours(cache_dir):
        return host_command(STANDALONE, port, "Backend #2", rules, "--cache-dir", cache_dir,
                            "--table-store", f"{work}/t.redb")

    cold, warm = [], []
    for i in range(repeats):
        cold.append(first_200_ms(ours(work / f"cold-{i}"), url, env))
    warm_cache = work / "warm"
    first_200_ms(ours(warm_cache), url, env)  # fills the cache
    for _ in range(repeats):
        warm.append(first_200_ms(ours(warm_cache), url, env))
    wasmtime_cold = [first_200_ms(wasmtime_serve(port, "-Ccache=n"), url) for _ in range(repeats)]
    first_200_ms(wasmtime_serve(port), url)  # fills wasmtime's own cache
    wasmtime_warm = [first_200_ms(wasmtime_serve(port), url) for _ in range(repeats)]
    native_runs = [first_200_ms([NATIVE, f"127.0.0.1:{port}"], url) for _ in range(repeats)]
    rows += [
        ("cold start, xray-host, empty compile cache", statistics.median(cold), "ms"),
        ("cold start, xray-host, compiled cache", statistics.median(warm), "ms"),
        ("cold start, wasmtime serve, no cache (-Ccache=n)", statistics.median(wasmtime_cold), "ms"),
        ("cold start, wasmtime serve, its compile cache", statistics.median(wasmtime_warm), "ms"),
        ("cold start, native hyper", statistics.median(native_runs), "ms"),
        ("idle memory, xray-host (traced)", idle_memory_mib(ours(warm_cache), url, env), "MiB"),
        ("idle memory, wasmtime serve", idle_memory_mib(wasmtime_serve(port), url), "MiB"),
        ("idle memory, native hyper", idle_memory_mib([NATIVE, f"127.0.0.1:{port}"], url), "MiB"),
    ]
    shutil.rmtree(work, ignore_errors=True)
    return rows


def criterion_rows():
    """Median times of the criterion benches, from target/criterion (run by scripts/bench.sh)."""
    rows = []
    for estimates in sorted((TARGET / "criterion").glob("*/*/new/estimates.json")):
        group, name = estimates.parent.parent.parent.name, estimates.parent.parent.name
        median_ns = json.loads(estimates.read_text())["median"]["point_estimate"]
        if median_ns >= 1000:
            rows.append((f"criterion {group}/{name}", median_ns / 1000, "us"))
        else:
            rows.append((f"criterion {group}/{name}", median_ns, "ns"))
    return rows


# ---------------------------------------------------------------------------------------------
# Output


def print_table(title, summary, baselines):
    print(f"\n{title}")
    header = (f"{'variant':44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} "
              f"{'mem MiB':>8} {'errors':>7} {'seg/req':>7}")
    print(header)
    print("-" * len(header))
    for name, s in summary.items():
        print(
            f"{name:44} {s['rps']:9.0f} {s['p50']:8.2f} {s['p99']:8.2f} "
            f"{s['cpu_us_per_request']:11.1f} "
            f"{s['memory_mib']:8.1f} {s['errors']:7d} {s['segments_per_request']:7.2f}"
        )
    for ours, theirs in baselines:
        a, b = summary[ours], summary[theirs]
        print(
            f"  {ours} / {theirs}: req/s x{a['rps'] / b['rps']:.2f}, "
            f"p50 x{a['p50'] / b['p50']:.2f}, p99 x{a['p99'] / b['p99']:.2f}, "
            f"memory x{a['memory_mib'] / b['memory_mib']:.2f}"
        )


def write_csv(path, sections, extra_rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["section", "variant", "metric", "value", "unit"])
        for section, summary in sections:
            for name, s in summary.items():
                writer.writerow([section, name, "requests_per_second", f"{s['rps']:.1f}", "1/s"])
                writer.writerow([section, name, "p50_latency", f"{s['p50']:.3f}", "ms"])
                writer.writerow([section, name, "p99_latency", f"{s['p99']:.3f}", "ms"])
                writer.writerow([section, name, "memory_pss_peak", f"{s['memory_mib']:.1f}", "MiB"])
                writer.writerow([section, name, "errors", s["errors"], "requests"])
                writer.writerow([section, name, "segments_per_request",
                                 f"{s['segments_per_request']:.2f}", "1"])
                writer.writerow([section, name, "cpu_per_request",
                                 f"{s['cpu_us_per_request']:.1f}", "us"])
        for name, value, unit in extra_rows:
            writer.writerow(["serverless and hot paths", name, "value", f"{value:.3f}", unit])


def write_chart(path, sections):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (scripts/bench.sh installs it)")
        return
    figure, axes = plt.subplots(len(sections), 3, figsize=(15, 4.2 * len(sections)))
    for row, (section, summary) in enumerate(sections):
        names = list(summary)
        colors = ["#2e7d32" if n.startswith("xray-host") else "#9e9e9e" for n in names]
        for column, (key, label) in enumerate(
            [("rps", "requests/s (higher is better)"), ("p99", "p99 latency, ms (lower is better)"),
             ("memory_mib", "peak memory (PSS), MiB (lower is better)")]
        ):
            axis = axes[row][column]
            values = [summary[n][key] for n in names]
            axis.barh(range(len(names)), values, color=colors)
            axis.set_yticks(range(len(names)))
            axis.set_yticklabels(names if column == 0 else [""] * len(names), fontsize=8)
            axis.invert_yaxis()
            axis.set_title(f"{section}: {label}", fontsize=9)
            for i, value in enumerate(values):
                axis.text(value, i, f" {value:.0f}" if key == "rps" else f" {value:.1f}",
                          va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of one load run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant (median)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--starts", type=int, default=10, help="cold starts per variant (median)")
    parser.add_argument("--out", type=Path, default=TARGET / "bench", help="where results go")
    parser.add_argument("--only",
                        choices=["export-modes", "observability-modes", "polyglot-components",
                                 "whole-application"],
                        help="run only this section (and write only its results)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="xray-host-bench-logs-"))
    cache = str(log_dir / "cache")
    rules = log_dir / "sample-all.json"
    rules.write_text(json.dumps(SAMPLE_ALL))
    rules = str(rules)
    # Pinned first: threads inherit the affinity of the thread that starts them, so the sinks
    # started below stay on the load generator's core, off the servers' core.
    if LOAD_CORES:
        os.sched_setaffinity(0, {int(LOAD_CORES)})
    sink = UdpSink()
    sink.start()

    print(f"load generator and sink on core {LOAD_CORES}, servers on {SERVER_CORES}; "
          f"wrk -t1 -c{args.connections}, {args.rounds} x {args.seconds}s per variant; logs in {log_dir}")
    sections = []
    otlp = OtlpSink()
    otlp.start()

    if args.only == "export-modes":
        modes = run_section("export modes, backend 2 GET /",
                            export_mode_factories(log_dir, rules, sink, otlp, cache), args, sink)
        print_cpu_table("Export modes, backend 2 GET / (CPU time of the host per request)",
                        modes, "X-Ray off")
        write_csv(args.out / "export-modes.csv", [("export modes", modes)], [])
        return 0

    if args.only == "observability-modes":
        observability = run_section("observability modes, backend 2 GET /",
                                    observability_mode_factories(log_dir, rules, sink, otlp, cache),
                                    args, sink)
        print_cpu_table("Observability modes, backend 2 GET /, traced (CPU time of the host "
                        "per request)", observability, "logs text, metrics none")
        write_csv(args.out / "observability-modes.csv",
                  [("observability modes", observability)], [])
        return 0

    if args.only == "polyglot-components":
        polyglot = run_section("the original's languages, one component at a time",
                               polyglot_component_factories(log_dir, rules, sink, cache),
                               args, sink)
        print_table("The original's languages, one component at a time", polyglot, [])
        write_csv(args.out / "polyglot-components.csv",
                  [("polyglot components", polyglot)], [])
        return 0

    if args.only == "whole-application":
        whole = run_section("whole application, GET /api/ (every request traced)",
                            whole_application_factories(log_dir, rules, sink, cache), args, sink)
        print_table("Whole application, GET /api/, every request traced", whole,
                    whole_application_pairs(whole)[:4])
        write_csv(args.out / "whole-application.csv", [("whole application", whole)], [])
        return 0

    whole = run_section(
        "whole application, GET /api/ (every request traced)",
        whole_application_factories(log_dir, rules, sink, cache),
        args,
        sink,
    )
    sections.append(("whole application", whole))
    single = run_section(
        "one component, backend 2 GET /",
        one_component_factories(log_dir, rules, sink, cache),
        args,
        sink,
    )
    sections.append(("one component", single))
    polyglot = run_section("the original's languages, one component at a time",
                           polyglot_component_factories(log_dir, rules, sink, cache), args, sink)
    sections.append(("polyglot components", polyglot))
    modes = run_section("export modes, backend 2 GET /",
                        export_mode_factories(log_dir, rules, sink, otlp, cache), args, sink)
    sections.append(("export modes", modes))
    observability = run_section("observability modes, backend 2 GET /",
                                observability_mode_factories(log_dir, rules, sink, otlp, cache),
                                args, sink)
    sections.append(("observability modes", observability))

    print("\n== serverless figures")
    extra = serverless(args.starts, sink, rules) + criterion_rows()

    print_table(
        "Whole application, GET /api/ through BFF -> backend 1 -> backend 2, every request traced",
        whole,
        whole_application_pairs(whole),
    )
    traced, off, reuse_off = "xray-host, traced", "xray-host, X-Ray off", "xray-host, traced, reuse off"
    serve, serve_timeout = "wasmtime serve", "wasmtime serve -Wtimeout=30s"
    native = "native hyper (ceiling)"
    print_table(
        "One component, backend 2 GET / (the same standalone .wasm; native returns the same JSON)",
        single,
        [(traced, serve), (off, serve), (traced, off), (reuse_off, serve),
         (traced, serve_timeout), (off, serve_timeout), (traced, native), (serve, native)],
    )
    print_table("The original's languages, one component at a time", polyglot, [])
    print_cpu_table("Export modes, backend 2 GET / (CPU time of the host per request)",
                    modes, "X-Ray off")
    print_cpu_table("Observability modes, backend 2 GET /, traced (CPU time of the host per "
                    "request)", observability, "logs text, metrics none")
    print("\nServerless figures and hot paths (medians)")
    for name, value, unit in extra:
        print(f"  {name:64} {value:10.2f} {unit}")

    write_csv(args.out / "results.csv", sections, extra)
    write_chart(args.out / "results.png", sections)
    print(f"\nwrote {args.out / 'results.csv'} and {args.out / 'results.png'}")
    failed = sum(s["errors"] for _, summary in sections for s in summary.values())
    if failed:
        print(f"{failed} requests failed: see the logs in {log_dir}", file=sys.stderr)
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
