"""The sandbox launcher: the program that tunesmith.eval.code starts for every code sample.

Not imported by tunesmith: code.py reads this file's text and passes it to the sandbox's interpreter
as `python -I -B -c <text>`. The text rather than the path, so that nothing here has to be readable
by the unprivileged uid the launcher drops to (the package may sit under /root); -I keeps the
environment and the user's site-packages out. The standard library only: the interpreter may be
/usr/bin/python3, never this project's virtual environment.

It starts as the caller's user (root or not), applies the layers described in code.py's docstring
and runs the sample in its own process. It reads its settings and the program from stdin, so that
neither the program nor the nonce (the proof that the program ran to its end) sits in argv or on
disk. Everything it needs is imported before the uid drop: afterwards the interpreter's own files
may be out of reach.
"""

import ctypes
import json
import os
import resource
import socket
import sys
import traceback


def readonly_fs(libc, work):
    """Mount namespace: everything read-only except `work`; False if the kernel refuses before any change."""
    ms_bind, ms_rec, ms_private, rdonly, nosuid, nodev = 4096, 16384, 1 << 18, 1, 2, 4
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    # private first: our mounts must never propagate back to the host's namespace
    if libc.mount(None, b"/", None, ms_rec | ms_private, None) != 0:
        return False
    if libc.mount(work.encode(), work.encode(), None, ms_bind, None) != 0:
        return False
    attr = (ctypes.c_uint64 * 4)(rdonly | nosuid, 0, 0, 0)  # struct mount_attr; not nodev: /dev/null must open
    if libc.syscall(442, -100, b"/", 0x8000, attr, 32) != 0:  # mount_setattr(AT_FDCWD, "/", AT_RECURSIVE)
        return False
    attr = (ctypes.c_uint64 * 4)(nosuid | nodev, rdonly, 0, 0)
    if libc.syscall(442, -100, work.encode(), 0, attr, 32) != 0:
        raise OSError(ctypes.get_errno(), "could not make the sample directory writable again")
    return True


def seccomp_no_sockets(libc):
    """BPF filter: socket(2), io_uring_setup(2), x32 and foreign-ABI syscalls fail with EACCES."""
    arch = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}.get(os.uname().machine)
    if arch is None:
        return False
    allow, deny = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EACCES
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch[0]), (ret, 0, 0, deny),  # seccomp_data.arch
            (ld, 0, 0, 0), (jge, 3, 0, 0x40000000), (jeq, 2, 0, 425), (jeq, 1, 0, arch[1]),  # .nr
            (ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(prog))(*[Filter(*ins) for ins in prog])
    fprog = Prog(len(prog), filters)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def setup(cfg, layers):
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        if libc.unshare(0x40000000) == 0:  # CLONE_NEWNET
            layers.append("net")
        if libc.unshare(0x00020000) == 0 and readonly_fs(libc, cfg["work"]):  # CLONE_NEWNS
            layers.append("fs")
    mb = 1024 * 1024
    for res, soft, hard in [(resource.RLIMIT_AS, cfg["memory_mb"] * mb, cfg["memory_mb"] * mb),
                            (resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),  # SIGXCPU, then SIGKILL
                            (resource.RLIMIT_FSIZE, cfg["file_mb"] * mb, cfg["file_mb"] * mb),
                            (resource.RLIMIT_NOFILE, cfg["nofile"], cfg["nofile"]),
                            (resource.RLIMIT_NPROC, cfg["nproc"], cfg["nproc"]),
                            (resource.RLIMIT_CORE, 0, 0)]:
        resource.setrlimit(res, (soft, hard))
    layers.append("rlimits")
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
        if os.getresuid() != (cfg["uid"],) * 3 or os.getresgid() != (cfg["uid"],) * 3:
            raise OSError("the uid/gid drop did not take")
        layers.append("uid")
    if seccomp_no_sockets(libc):
        layers.append("seccomp")

    class NoNetwork(socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None:  # wrapping an existing descriptor (socketpair, fromfd) creates nothing new
                raise PermissionError("network access is disabled in the sandbox")
            super().__init__(family, type, proto, fileno)

    socket.socket = socket.SocketType = NoNetwork
    layers.append("py-socket")
    os.chdir(cfg["work"])


def main():
    cfg = json.loads(sys.stdin.buffer.read())
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)  # input() gets EOF at once instead of waiting for the timeout
    os.close(null)
    out, err = os.dup(1), os.dup(2)  # our own copies: the sample may replace sys.stdout or close fd 1
    say = lambda text: os.write(err, (text + "\n").encode("utf-8", "replace"))  # noqa: E731
    layers = []
    try:
        setup(cfg, layers)
    except Exception as e:
        say(f"{cfg['prefix']}setup failed: {type(e).__name__}: {e}")
        os._exit(3)
    say(cfg["prefix"] + "layers=" + ",".join(layers))  # first stderr line, written before the sample runs
    sys.argv = ["sample.py"]
    try:
        exec(compile(cfg["program"], "sample.py", "exec"), {"__name__": "__main__"})
    except BaseException as e:  # SystemExit too: exit(0) halfway through the tests is not a pass
        try:
            say("".join(traceback.format_exception(e))[-4000:])
        finally:
            say((f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)[:300])
            os._exit(1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.write(out, (cfg["nonce"] + "\n").encode())
    os._exit(0)  # skip the sample's atexit handlers


if __name__ == "__main__":  # `python -c` runs it as __main__; importing it runs nothing
    main()
