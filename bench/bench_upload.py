"""Upload benchmark: client peak memory and throughput against the sandbox, compared with curl.

One command::

    python bench/bench_upload.py [--big-mb 480] [--small-mb 50] [--keep]

It generates two valid chat JSONL files (about 480 MB, just under the API's 512 MB limit, and
50 MB) in a temporary directory, starts the sandbox as a separate server process on 127.0.0.1,
and uploads each file

* with ``MistralClient.upload_file`` in a fresh child process, reading that process's peak
  resident memory (``ru_maxrss``) when it is done, and
* with ``curl -F file=@... -F purpose=fine-tune`` to the same server (when curl exists),

then prints a table. Times are end to end: the sandbox validates every upload with the shared
training-data validator before it answers, so both clients wait for the same server work.
A second table repeats both uploads against a minimal HTTP sink (it reads and discards the
body) to show the client's own streaming speed, which the sandbox's validation hides.
Every upload uses a distinct filename so the server's (content, filename) dedupe never
short-circuits a run.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789"
MB = 1024 * 1024


def generate(path: Path, target_bytes: int) -> int:
    """Write a valid chat JSONL of about ``target_bytes``; return its size."""
    rows = []
    for i in range(2000):
        row = {
            "messages": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": f"Question {i}: what is {i} times {i % 97 + 3}?"},
                {
                    "role": "assistant",
                    "content": f"{i} times {i % 97 + 3} is {i * (i % 97 + 3)}. " + "ok " * (i % 50),
                },
            ]
        }
        rows.append(json.dumps(row, ensure_ascii=False))
    block = ("\n".join(rows) + "\n").encode()
    written = 0
    with open(path, "wb") as fh:
        while written + len(block) <= target_bytes:
            fh.write(block)
            written += len(block)
    return written


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """The sandbox as its own server process (the real command line)."""
    cmd = [
        sys.executable,
        "-m",
        "reconciler",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--api-key",
        API_KEY,
    ]
    log = open(data_dir.parent / "sandbox.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"sandbox exited with {proc.returncode}; see {data_dir.parent / 'sandbox.log'}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not start listening within 60 s")


class _Sink(http.server.BaseHTTPRequestHandler):
    """Reads an upload, discards it, answers with a File object of the right size."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        left = total = int(self.headers["content-length"])
        while left > 0:
            left -= len(self.rfile.read(min(left, MB)))
        body = json.dumps(
            {
                "id": "00000000-0000-0000-0000-000000000000",
                "object": "file",
                "bytes": total,  # multipart framing included; the sink does not parse
                "created_at": 0,
                "filename": "sink.jsonl",
                "purpose": "fine-tune",
                "sample_type": "instruct",
                "source": "upload",
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def start_sink() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def print_table(
    title: str, rows: list[tuple[str, int, dict[str, float], dict[str, float] | None]]
) -> None:
    print()
    print(title)
    print(
        f"{'file':<6} {'size MiB':>9} {'client s':>9} {'client MiB/s':>12} "
        f"{'client peak RSS MiB':>20} {'curl s':>8} {'curl MiB/s':>10}"
    )
    for label, size, client, curl in rows:
        c_s = f"{curl['seconds']:.2f}" if curl else "n/a"
        c_t = f"{size / MB / curl['seconds']:.1f}" if curl else "n/a"
        print(
            f"{label:<6} {size / MB:>9.1f} {client['seconds']:>9.2f} "
            f"{size / MB / client['seconds']:>12.1f} {client['peak_rss_mb']:>20.1f} "
            f"{c_s:>8} {c_t:>10}"
        )


def child_upload(base_url: str, path: str, filename: str) -> None:
    """Runs in a fresh interpreter: one upload, then report time and peak RSS as JSON."""
    sys.path.insert(0, str(ROOT))
    from reconciler.client import MistralClient

    started = time.perf_counter()
    with MistralClient(base_url, API_KEY, upload_timeout=1800) as client:
        remote = client.upload_file(Path(path), filename)
        sent = client.stats.bytes_uploaded
    seconds = time.perf_counter() - started
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": rss_kib / 1024, "bytes": remote.bytes, "sent": sent}
        )
    )


def run_client(base_url: str, path: Path, filename: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", base_url, str(path), filename],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_curl(base_url: str, path: Path, filename: str) -> dict[str, float] | None:
    curl = shutil.which("curl")
    if curl is None:
        return None
    started = time.perf_counter()
    out = subprocess.run(
        [
            curl,
            "-sS",
            "--fail-with-body",
            "-H",
            f"Authorization: Bearer {API_KEY}",
            "-F",
            f"file=@{path};filename={filename}",
            "-F",
            "purpose=fine-tune",
            f"{base_url}/v1/files",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"curl failed ({out.returncode}): {out.stdout[:300]} {out.stderr[:300]}")
    body = json.loads(out.stdout)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # includes curl; informative only
    return {"seconds": seconds, "bytes": body["bytes"], "children_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=float, default=480)
    parser.add_argument("--small-mb", type=float, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--child", nargs=3, metavar=("URL", "PATH", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_upload(*args.child)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    server = None
    try:
        files = []
        for label, mb in (("small", args.small_mb), ("big", args.big_mb)):
            path = tmp / f"{label}.jsonl"
            t0 = time.perf_counter()
            size = generate(path, int(mb * MB))
            print(f"generated {path.name}: {size / MB:.1f} MiB in {time.perf_counter() - t0:.1f}s")
            files.append((label, path, size))
        port = free_port()
        (tmp / "data").mkdir()
        server = start_sandbox(tmp / "data", port)
        base = f"http://127.0.0.1:{port}"
        rows = []
        for label, path, size in files:
            stamp = int(time.time() * 1000)
            client = run_client(base, path, f"{label}-client-{stamp}.jsonl")
            assert client["bytes"] == size, (client, size)
            curl = run_curl(base, path, f"{label}-curl-{stamp}.jsonl")
            rows.append((label, size, client, curl))
        print_table("end to end, sandbox (validates every upload):", rows)
        sink, sink_url = start_sink()
        sink_rows = []
        try:
            for label, path, size in files:
                client = run_client(sink_url, path, f"{label}.jsonl")
                curl = run_curl(sink_url, path, f"{label}.jsonl")
                sink_rows.append((label, size, client, curl))
        finally:
            sink.shutdown()
        print_table("transport only, discarding sink:", sink_rows)
        rows += sink_rows
        small_rss = max(r[2]["peak_rss_mb"] for r in rows if r[0] == "small")
        big_rss = max(r[2]["peak_rss_mb"] for r in rows if r[0] == "big")
        ok = big_rss < 150 and big_rss <= small_rss * 1.05 + 2
        print()
        print(
            f"peak RSS: big {big_rss:.1f} MiB vs small {small_rss:.1f} MiB "
            f"-> {'OK' if ok else 'OVER TARGET'} (target < 150 MiB, big no higher than small)"
        )
        if not ok:
            sys.exit(1)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
