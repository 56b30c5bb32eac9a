# mend's in-container command runner. One long-lived `docker exec` runs this script; each
# command is one JSON line on stdin and one JSON line of result on stdout, so a command
# costs a fork instead of a whole engine exec. Commands run concurrently, each in its own
# session/process group, killed as a group (SIGKILL) at the timeout. Output is capped here
# (head and tail kept) so huge output never crosses the socket.
import base64, json, os, signal, subprocess, sys, threading

_out = sys.stdout.buffer
_lock = threading.Lock()


def send(obj):
    line = (json.dumps(obj) + "\n").encode()
    with _lock:
        _out.write(line)
        _out.flush()


class Cap:
    def __init__(self, cap):
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def push(self, b):
        self.total += len(b)
        if len(self.head) < self.half:
            k = self.half - len(self.head)
            self.head += b[:k]
            b = b[k:]
        if b:
            self.tail += b
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def wire(self):
        return [base64.b64encode(bytes(self.head)).decode(), base64.b64encode(bytes(self.tail)).decode(), self.total]


def pump(f, cap):
    while True:
        b = f.read1(65536)
        if not b:
            break
        cap.push(b)


def killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def run(req):
    rid = req["id"]
    env = dict(os.environ)
    env.update(req.get("env") or {})
    has_stdin = req.get("stdin") is not None
    try:
        p = subprocess.Popen(
            req["argv"], cwd=req.get("cwd"), env=env,
            stdin=subprocess.PIPE if has_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except Exception as e:  # no such program, bad cwd, ...
        send({"id": rid, "spawn_error": "%s: %s" % (type(e).__name__, e)})
        return
    caps = [Cap(req["cap"]), Cap(req["cap"])]
    pumps = [threading.Thread(target=pump, args=(f, c), daemon=True) for f, c in ((p.stdout, caps[0]), (p.stderr, caps[1]))]
    for t in pumps:
        t.start()
    if has_stdin:
        def feed():
            try:
                p.stdin.write(base64.b64decode(req["stdin"]))
                p.stdin.close()
            except Exception:
                pass
        threading.Thread(target=feed, daemon=True).start()
    timed_out = False
    try:
        p.wait(timeout=req["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
        killpg(p.pid)
        p.wait()
    killpg(p.pid)  # stragglers that still hold the pipes
    for t in pumps:
        t.join(5)
    rc = p.returncode
    send({"id": rid, "code": rc if rc >= 0 else None, "signal": -rc if rc < 0 else None,
          "timed_out": timed_out, "out": caps[0].wire(), "err": caps[1].wire()})


send({"ready": True})
for line in sys.stdin.buffer:
    if line.strip():
        threading.Thread(target=run, args=(json.loads(line),), daemon=True).start()
