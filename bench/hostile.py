"""The probes of bench/hostile.sh (stdlib only): each prints one table row with what happened,
how long it took and the memory it cost. Usage: python3 bench/hostile.py FERRITE_BIN TMPDIR"""
import os
import re
import socket
import subprocess
import sys
import threading
import time

BIN, TMP = sys.argv[1], sys.argv[2]
FILES = os.path.join(TMP, "files")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(ROOT, "tests/fixtures/photos/astronaut.jpg")
rows = []


def row(probe, result, seconds, memory):
    rows.append((probe, result, f"{seconds:.2f} s" if seconds is not None else "", memory))
    print(f"| {probe} | {result} | {rows[-1][2]} | {memory} |", flush=True)


def cli(args, cap=4_000_000_000, limit=60):
    """ferrite ARGS under an address-space cap, through GNU time: (exit code, output, s, peak MiB)."""
    cmd = ["/usr/bin/time", "-f", "MAXRSS %M", "prlimit", f"--as={cap}", BIN] + args
    t = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=dict(os.environ, RUST_LOG="warn"))
        code, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        code, out = "killed", (e.stdout or b"").decode() + (e.stderr or b"").decode()
    took = time.time() - t
    m = re.findall(r"MAXRSS (\d+)", out)
    peak = f"{int(m[-1]) / 1024:.0f} MiB peak" if m else ""
    return code, out, took, peak


def first_error(out):
    for line in out.splitlines():
        if "error" in line.lower() or "not a" in line:
            return line.strip().replace(TMP + "/", "").replace("|", "/")[:160]
    return out.strip().splitlines()[-1][:160] if out.strip() else ""


def probe_cli():
    f = lambda n: os.path.join(FILES, n)
    for name, args in [
        (f"`detect` JPEG declaring 60000x60000 ({os.path.getsize(f('jpeg-declares-60000x60000.jpg'))} B)", ["detect", f("jpeg-declares-60000x60000.jpg")]),
        ("`detect /dev/zero`", ["detect", "/dev/zero"]),
    ]:
        code, out, took, peak = cli(args)
        row(name, f"exit {code}: {first_error(out)}", took, peak)
    fifo = os.path.join(TMP, "fifo-dir", "pipe.jpg")
    os.makedirs(os.path.dirname(fifo))
    os.mkfifo(fifo)
    code, out, took, peak = cli(["detect", fifo])
    row("`detect` a FIFO", f"exit {code}: {first_error(out)}", took, peak)
    os.link(PHOTO, os.path.join(TMP, "fifo-dir", "astronaut.jpg")) if os.stat(PHOTO).st_dev == os.stat(TMP).st_dev else \
        subprocess.run(["cp", PHOTO, os.path.join(TMP, "fifo-dir")], check=True)
    code, out, took, peak = cli(["detect", os.path.dirname(fifo)])
    row("`detect` a folder holding a FIFO and a photo", f"exit {code}: photo analysed: {'astronaut.jpg: 1 face' in out}; FIFO refused: {'not a regular file' in out}", took, peak)
    loop = os.path.join(TMP, "loop")
    os.makedirs(loop)
    subprocess.run(["cp", PHOTO, loop], check=True)
    os.symlink(loop, os.path.join(loop, "self1"))
    os.symlink(loop, os.path.join(loop, "self2"))
    code, out, took, peak = cli(["detect", loop, "--format", "csv"])
    n = sum(1 for l in out.splitlines() if l.startswith(os.path.join(loop, "astronaut.jpg") + ","))
    row("`detect` a folder with two symlinks to itself", f"exit {code}: the photo analysed {n} time(s)", took, peak)
    for name in ["rle8-8000x5000.bmp", "jpeg-declares-8000x5000.jpg", "tiff-5000-one-byte-strips.tif", "palette-lzw-bomb.tif"]:
        size = os.path.getsize(f(name))
        code, out, took, peak = cli(["detect", f(name)])
        result = "analysed" if code == 0 else first_error(out)
        row(f"`detect` {name} ({size:,} B)", f"exit {code}: {result}", took, peak)
    bad = os.path.join(ROOT, "fuzz/regressions/image_decode/zune-jpeg-idct-panic.jpg")
    p = subprocess.run([BIN, "detect", bad], capture_output=True, text=True, env=dict(os.environ, RUST_BACKTRACE="1", RUST_LOG="warn"))
    row("`detect` a JPEG that panics the decoder, RUST_BACKTRACE=1", f"exit {p.returncode}: {len(p.stderr.splitlines())} lines, {len(p.stderr)} B on stderr, backtrace: {'stack backtrace' in p.stderr}", None, "")


class Server:
    def __init__(self, cap=2_000_000_000, args=(), env=None):
        self.p = subprocess.Popen(["prlimit", f"--as={cap}", BIN, "serve", "--addr", "127.0.0.1:0", *args],
                                  stdout=subprocess.PIPE, stderr=open(os.path.join(TMP, "serve.log"), "ab"), text=True,
                                  env=dict(os.environ, RUST_LOG="warn", **(env or {})))
        line = self.p.stdout.readline()
        host, port = re.search(r"http://([\d.]+):(\d+)/", line).groups()
        self.addr = (host, int(port))

    def rss(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        self.p.kill()
        self.p.wait()


def http(addr, head, body=b"", timeout=120):
    s = socket.create_connection(addr)
    s.settimeout(timeout)
    s.sendall(head + body)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return data


def post(addr, body, extra=b""):
    head = b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n" + extra + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    r = http(addr, head, body)
    return int(r[9:12]) if r[:4] == b"HTTP" else 0, r


def ws_frame(opcode, payload):
    f = bytearray([0x80 | opcode])
    n = len(payload)
    if n < 126:
        f.append(0x80 | n)
    elif n < 65536:
        f += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        f += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    mask = b"\x11\x22\x33\x44"
    f += mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(f)


def ws_open(addr, origin=None):
    s = socket.create_connection(addr)
    s.settimeout(60)
    extra = f"Origin: {origin}\r\n" if origin else ""
    s.sendall((f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{extra}"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            break
        head += b
    return s, head[9:12].decode()


def probe_server():
    files = lambda n: open(os.path.join(FILES, n), "rb").read()
    bomb = files("rle8-8000x5000.bmp")
    srv = Server()
    post(srv.addr, open(PHOTO, "rb").read())
    before = srv.rss()
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set() and srv.alive():
            try:
                peak[0] = max(peak[0], srv.rss())
            except OSError:
                return
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    codes, answers = [], []

    def upload():
        codes.append(post(srv.addr, bomb)[0])

    def live():
        s, status = ws_open(srv.addr)
        s.sendall(ws_frame(2, bomb))
        try:
            answers.append(b'"type"' in s.recv(4096))
        except OSError:
            answers.append(False)
        s.close()

    t = time.time()
    threads = [threading.Thread(target=upload) for _ in range(4)] + [threading.Thread(target=live) for _ in range(6)]
    [x.start() for x in threads]
    [x.join() for x in threads]
    took = time.time() - t
    code, body = post(srv.addr, open(PHOTO, "rb").read())
    time.sleep(0.5)
    stop.set()
    after = srv.rss() if srv.alive() else 0
    row("server under `prlimit --as=2000000000`: 4 parallel uploads of the 1,080 B BMP (8000x5000) + 6 WebSocket sessions sending it",
        f"alive: {srv.alive()}; uploads {sorted(codes)}; live sessions answered {sum(answers)}/6; then a photo: {code}, faces: {body.count(b'probabilities')}",
        took, f"RSS {before} -> peak {peak[0]} -> after {after} MiB")
    # Ping flood: 2 million pings from a client that never reads.
    s, _ = ws_open(srv.addr)
    time.sleep(0.3)
    before = srv.rss()
    frames = ws_frame(9, b"") * 2_000_000
    s.settimeout(3)
    sent, t = 0, time.time()
    try:
        while sent < len(frames):
            sent += s.send(frames[sent:sent + 65536])
    except OSError:
        pass
    took = time.time() - t
    time.sleep(0.5)
    row("WebSocket ping flood, 2,000,000 pings, never reading", f"{sent // 6:,} pings sent; server alive: {srv.alive()}", took,
        f"RSS {before} -> {srv.rss()} MiB")
    s.close()
    # Foreign Host and Origin.
    r = http(srv.addr, b"GET /api/v1/health HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n")
    _, ws_status = ws_open(srv.addr, origin="http://evil.example")
    code, _ = post(srv.addr, open(PHOTO, "rb").read(), b"Origin: http://evil.example\r\n")
    row("`Host: attacker.example`; WebSocket and upload from `Origin: http://evil.example`", f"{r[9:12].decode()}; {ws_status}; {code}", None, "")
    # One client opening 1,000 connections.
    held = []
    for _ in range(1000):
        try:
            c = socket.create_connection(srv.addr)
            c.settimeout(0.2)
            held.append(c)
        except OSError:
            break
    time.sleep(0.5)
    open_ = 0
    for c in held:
        c.setblocking(False)
        try:
            open_ += c.recv(1) != b""
        except BlockingIOError:
            open_ += 1
        except OSError:
            pass
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.connect(srv.addr)
    other.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    other.settimeout(5)
    reply = other.recv(12)
    row("one client opens 1,000 connections", f"{open_} kept open; another address then: {reply.decode()}", None, "")
    for c in held:
        c.close()
    srv.stop()


def probe_feed():
    video = os.path.join(TMP, "broken.avi")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2", "-c:v", "mjpeg", video], check=True)
    data = bytearray(open(video, "rb").read())
    movi, idx = data.find(b"movi"), data.rfind(b"idx1")
    for i in range(movi + 4, idx if idx > 0 else len(data)):
        if (i - movi) % 8:
            data[i] = (i * 7) & 255
    open(video, "wb").write(bytes(data))
    # Every start of ffmpeg is counted by a wrapper first on the server's PATH.
    wrap = os.path.join(TMP, "bin")
    os.makedirs(wrap)
    starts = os.path.join(TMP, "ffmpeg-starts")
    real = subprocess.run(["sh", "-c", "command -v ffmpeg"], capture_output=True, text=True).stdout.strip()
    with open(os.path.join(wrap, "ffmpeg"), "w") as f:
        f.write(f'#!/bin/sh\necho start >> "{starts}"\nexec "{real}" "$@"\n')
    os.chmod(os.path.join(wrap, "ffmpeg"), 0o755)
    srv = Server(args=("--source", video), env={"PATH": wrap + os.pathsep + os.environ["PATH"]})
    t = time.time()
    replies = []
    end = time.time() + 60
    while time.time() < end:
        if not replies or time.time() - replies[-1][0] > 5:
            r = http(srv.addr, b"GET /video_feed HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout=10)
            replies.append((time.time(), r[9:12].decode(), r))
        time.sleep(0.05)
    leaked = any(b"broken.avi" in r or b"ffmpeg" in r for _, _, r in replies)
    n = sum(1 for _ in open(starts)) if os.path.exists(starts) else 0
    row("`/video_feed` on an AVI whose frames cannot be decoded; a viewer every 5 s for 60 s",
        f"{n} ffmpeg processes started; answers {sorted(set(c for _, c, _ in replies))}; source or ffmpeg text shown: {leaked}",
        time.time() - t, "")
    srv.stop()


print("| probe | result | time | memory |")
print("|---|---|---|---|")
probe_cli()
probe_server()
probe_feed()
