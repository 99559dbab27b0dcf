#!/usr/bin/python3
"""The docs conformance check (issue 14 point 3): an implementation written
from docs/ alone, in another language, against the real agent.

Each subcommand checks one recipe of the docs with nothing but the Python
standard library and python3-cryptography (Ed25519, Debian's package):

  sets SRC                 every Reason in reason.proto, reason.h and the
                           refusal table of docs/protocol.md are the same
                           names; every Condition.Type is in docs/health.md
  envelope KEY SEQ ID NODE BOOT OUT
                           builds a signed Ping by the recipe of
                           docs/protocol.md (hand-encoded protobuf, DSSE PAE,
                           Ed25519, key id) and writes the envelope JSON
  pae SRC                  the byte-level PAE examples of the docs
  audit FILE               re-derives every hash of an audit file by the
                           recipe of docs/state.md
  audit-example SRC OUT    writes the example line of docs/state.md to OUT
                           and checks its hash by the recipe
  status SOCKET OUT        reads the status socket by the protocol of
                           docs/health.md and writes the health JSON to OUT
  receipt RESULT HEALTH    verifies a Wipe result's receipt by docs/wipe.md
                           against the key pinned from health
"""
import base64
import hashlib
import json
import re
import socket
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# --- sets -------------------------------------------------------------------

def enum_values(proto_text, enum_name):
    m = re.search(r"enum " + enum_name + r" \{(.*?)\n\s*\}", proto_text, re.S)
    if not m:
        fail("no enum " + enum_name)
    return {v for v in re.findall(r"^\s*([A-Z][A-Z0-9_]*) = \d+;", m.group(1), re.M)}


def table_first_column(md_text, header_start):
    """Backticked names in the first column of the table whose header row starts so."""
    lines = md_text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            out = set()
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                out.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1]))
            return out
    fail("no table starting " + header_start)


def cmd_sets(src):
    reasons = enum_values(read(src + "/proto/nodeward/v1/reason.proto"), "Reason")
    reasons.discard("REASON_UNSPECIFIED")
    header = set(re.findall(r'=\s*"([A-Z][A-Z0-9_]+)";', read(src + "/agent/common/reason.h")))
    documented = table_first_column(read(src + "/docs/protocol.md"), "| reason | gRPC code |")
    for name, got in (("agent/common/reason.h", header), ("docs/protocol.md", documented)):
        if got != reasons:
            fail("%s and reason.proto differ: only in %s %s, only in the proto %s"
                 % (name, name, sorted(got - reasons), sorted(reasons - got)))
    agent = read(src + "/proto/nodeward/v1/agent.proto")
    m = re.search(r"message Condition \{(.*?)\n\}", agent, re.S)
    types = enum_values(m.group(1), "Type")
    types.discard("TYPE_UNSPECIFIED")
    doc_types = table_first_column(read(src + "/docs/health.md"), "| type | severity |")
    if doc_types != types:
        fail("docs/health.md conditions and Condition.Type differ: doc only %s, proto only %s"
             % (sorted(doc_types - types), sorted(types - doc_types)))
    print("sets OK: %d reasons, %d condition types, each in the proto, the code and the docs"
          % (len(reasons), len(types)))


# --- the envelope recipe (docs/protocol.md) -----------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, value):
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def cmd_envelope(key_path, seq, command_id, node, boot, out):
    key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        fail("not an Ed25519 key")
    now = int(time.time())
    issued = field_varint(1, now - 5)      # google.protobuf.Timestamp{seconds}
    expires = field_varint(1, now + 300)
    ping = field_bytes(1, b"written from docs/protocol.md alone")
    payload = (field_bytes(1, node.encode()) + field_bytes(2, boot.encode()) +
               field_bytes(3, command_id.encode()) + field_varint(4, int(seq)) +
               field_bytes(5, issued) + field_bytes(6, expires) + field_bytes(16, ping))
    payload_type = "application/vnd.nodeward.v1.command.ping+protobuf"
    sig = key.sign(pae(payload_type, payload))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    envelope = {"payload": base64.b64encode(payload).decode(),
                "payload_type": payload_type,
                "signatures": [{"key_id": hashlib.sha256(raw).hexdigest(),
                                "sig": base64.b64encode(sig).decode()}]}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(envelope, f)
    print("envelope OK: %d payload bytes, key id %s" % (len(payload), hashlib.sha256(raw).hexdigest()))


def cmd_pae(src):
    protocol = read(src + "/docs/protocol.md")
    want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    if want not in protocol:
        fail("docs/protocol.md lost its PAE example")
    if pae("http://example.com/HelloWorld", b"hello world").decode() != want:
        fail("the PAE recipe does not give the docs' example")
    wipe = read(src + "/docs/wipe.md")
    want = r"DSSEv1 49 application/vnd.nodeward.wipe-receipt.v1+protobuf 3 \x0a\x01n"
    if want not in wipe:
        fail("docs/wipe.md lost its receipt PAE example")
    got = pae("application/vnd.nodeward.wipe-receipt.v1+protobuf", b"\x0a\x01n")
    if got != b"DSSEv1 49 application/vnd.nodeward.wipe-receipt.v1+protobuf 3 \x0a\x01n":
        fail("the receipt PAE recipe does not give the docs' example")
    print("pae OK: both byte-level examples")


# --- the audit line (docs/state.md) -------------------------------------------

HASH_MEMBER = re.compile(r',"hash":"([0-9a-f]{64})"')


def check_audit_lines(lines):
    prev = "0" * 64
    for n, line in enumerate(lines):
        m = HASH_MEMBER.search(line)
        if not m:
            fail("line %d has no hash member: %s" % (n, line[:120]))
        record = json.loads(line)
        if record.get("prev_hash") != prev:
            fail("line %d: prev_hash %s, the previous hash is %s" % (n, record.get("prev_hash"), prev))
        if str(record.get("index", "0")) != str(n):
            fail("line %d: index %s" % (n, record.get("index")))
        without = line[:m.start()] + line[m.end():]
        want = hashlib.sha256((prev + "\n" + without).encode()).hexdigest()
        if want != m.group(1):
            fail("line %d: hash %s, the recipe gives %s" % (n, m.group(1), want))
        prev = m.group(1)
    return prev


def cmd_audit(path):
    lines = read(path).splitlines()
    head = check_audit_lines(lines)
    decisions = {}
    for line in lines:
        d = json.loads(line).get("decision", "event")
        decisions[d] = decisions.get(d, 0) + 1
    print("audit OK: %d lines by the recipe, head %s, %s" % (len(lines), head, decisions))


def cmd_audit_example(src, out):
    state = read(src + "/docs/state.md")
    m = re.search(r"```\n(\{\"index\".*?)\n```", state, re.S) or re.search(
        r"```\n(\{\"time\".*?)\n```", state, re.S)
    if not m:
        fail("docs/state.md has no example audit line")
    line = m.group(1)
    check_audit_lines([line])
    with open(out, "w", encoding="utf-8") as f:
        f.write(line + "\n")
    print("audit example OK: its hash follows the recipe")


# --- the status socket (docs/health.md) ---------------------------------------

def cmd_status(path, out):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    data = b""
    while True:  # send nothing, read to end of file
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    if not data.endswith(b"\n") or data.count(b"\n") != 1:
        fail("not one JSON document on one line: %r" % data[:200])
    doc = json.loads(data)
    if "health" not in doc or "state" not in doc["health"]:
        fail("no health.state in the status document")
    h = doc["health"]
    if h["accepting_commands"] != (h["state"] in ("SERVING", "DEGRADED")):
        fail("accepting_commands disagrees with state %s" % h["state"])
    with open(out, "w", encoding="utf-8") as f:
        json.dump(h, f)
    print("status OK: state %s, %d conditions, sections %s" % (
        h["state"], len(h.get("conditions", [])),
        sorted(k for k in h if isinstance(h[k], dict))))


# --- the wipe receipt (docs/wipe.md) ------------------------------------------

def top_level_fields(buf):
    """field number -> last value (int for varints, bytes otherwise)."""
    out, i = {}, 0

    def read_varint():
        nonlocal i
        shift, value = 0, 0
        while True:
            b = buf[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    while i < len(buf):
        key = read_varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number] = read_varint()
        elif wire == 2:
            n = read_varint()
            out[number] = buf[i:i + n]
            i += n
        else:
            fail("unexpected wire type %d in the receipt" % wire)
    return out


def cmd_receipt(result_path, health_path):
    text = read(result_path)
    result = json.loads(text[text.index("{"):])
    w = result["wipe"]
    health = json.loads(read(health_path))
    pub = base64.b64decode(health["wipe"]["signing_public_key"])
    if len(pub) != 32:
        fail("the pinned signing key is not 32 raw bytes")
    key_id = hashlib.sha256(pub).hexdigest()
    if key_id != health["wipe"]["signing_key_id"] or key_id != w["signing_key_id"]:
        fail("key id: sha256 of the key %s, health %s, result %s"
             % (key_id, health["wipe"]["signing_key_id"], w["signing_key_id"]))
    if w["payload_type"] != "application/vnd.nodeward.wipe-receipt.v1+protobuf":
        fail("payload_type " + w["payload_type"])
    if w["signature_algorithm"] != "ed25519":
        fail("signature_algorithm " + w["signature_algorithm"])
    receipt = base64.b64decode(w["receipt"])
    ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(
        base64.b64decode(w["signature"]), pae(w["payload_type"], receipt))
    # WipeReceipt.complete is field 9 (varint): read the top-level fields.
    fields = top_level_fields(receipt)
    if fields.get(9) != 1:
        fail("the receipt does not say complete: %s" % sorted(fields))
    print("receipt OK: Ed25519 over PAE(payload_type, receipt) verifies under the pinned key %s"
          % key_id[:16])


def main():
    cmds = {"sets": cmd_sets, "envelope": cmd_envelope, "pae": cmd_pae, "audit": cmd_audit,
            "audit-example": cmd_audit_example, "status": cmd_status, "receipt": cmd_receipt}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        fail("usage: " + __doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
