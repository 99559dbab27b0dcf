#!/usr/bin/python3
"""Runs a shell command inside the test VM through qemu's guest agent.

The control channel of the full-VM tier: it does not go through the VM's
network, so it works whatever the agent's firewall does. Prints the
command's stdout and stderr and exits with its exit status (124 on timeout).

  qga.py SOCKET [--timeout SECONDS] COMMAND...
  qga.py SOCKET --ping          exits 0 once the guest agent answers
"""
import base64
import json
import random
import socket
import sys
import time


def call(sock_path, request, timeout):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        f = s.makefile("rwb")
        # A sync first: drops whatever an earlier client left unread.
        token = random.randrange(1, 2**31)
        f.write(json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise ConnectionError("guest agent closed the channel")
            try:
                if json.loads(line).get("return") == token:
                    break
            except ValueError:
                continue
        f.write(json.dumps(request).encode() + b"\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise ConnectionError("guest agent closed the channel")
            reply = json.loads(line)
            if "error" in reply:
                raise RuntimeError(reply["error"].get("desc", str(reply["error"])))
            if "return" in reply:
                return reply["return"]


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    sock = sys.argv[1]
    args = sys.argv[2:]
    if args == ["--ping"]:
        try:
            call(sock, {"execute": "guest-ping"}, 3)
            return 0
        except (OSError, RuntimeError, ValueError):
            return 1
    timeout = 120.0
    if args[0] == "--timeout":
        timeout = float(args[1])
        args = args[2:]
    command = " ".join(args)
    pid = call(sock, {"execute": "guest-exec", "arguments": {
        "path": "/bin/sh", "arg": ["-c", command], "capture-output": True}}, 10)["pid"]
    deadline = time.monotonic() + timeout
    while True:
        st = call(sock, {"execute": "guest-exec-status", "arguments": {"pid": pid}}, 10)
        if st.get("exited"):
            break
        if time.monotonic() > deadline:
            print(f"qga: '{command}' still running after {timeout:.0f} s", file=sys.stderr)
            return 124
        time.sleep(0.2)
    sys.stdout.write(base64.b64decode(st.get("out-data", "")).decode(errors="replace"))
    sys.stderr.write(base64.b64decode(st.get("err-data", "")).decode(errors="replace"))
    if "signal" in st:
        return 128 + st["signal"]
    return st.get("exitcode", 1)


if __name__ == "__main__":
    sys.exit(main())
