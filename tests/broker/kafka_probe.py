#!/usr/bin/env python3
"""Tiny dependency-free Kafka wire-protocol probe used by kafka.sh.

    kafka_probe.py ready HOST PORT [TIMEOUT_S [MIN_BROKERS]]
        One attempt: ApiVersions v0, then Metadata (all topics). Exit 0 and
        print the broker list if the broker answers and lists >= MIN_BROKERS
        brokers (default 1).
    kafka_probe.py partitions HOST PORT TOPIC COUNT [TIMEOUT_S]
        CreatePartitions v1: grows TOPIC to COUNT partitions (any broker of a
        KRaft cluster forwards it to the controller). Exit 0 when the broker
        answered no error.
    kafka_probe.py leader HOST PORT TOPIC PARTITION [TIMEOUT_S]
        Prints the node id of the partition's leader (-1: none right now).
        Exit 1 if the topic or partition is unknown.
    kafka_probe.py topic HOST PORT NAME [TIMEOUT_S]
        Metadata request for NAME (auto-creates it when the broker has
        auto.create.topics.enable=true), retried until the topic has
        partitions with leaders or TIMEOUT_S (default 20) passes. Prints
        "topic NAME partitions N".

Metadata version: negotiated from ApiVersions (highest supported <= 8, so
the non-flexible encoding is used). Works against Kafka 3.x and 4.x.
"""
import socket
import struct
import sys
import time

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = b"kafka-probe"


class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError("short response")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        return [fn() for _ in range(n)]


def enc_string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def request(sock, api_key, version, corr, body):
    # Request header v1: api_key, api_version, correlation_id, client_id
    hdr = struct.pack(">hhi", api_key, version, corr) + enc_string(CLIENT_ID)
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, size)
    r = Reader(resp)
    got = r.i32()
    if got != corr:
        raise ValueError("correlation id mismatch %d != %d" % (got, corr))
    return r


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        out += chunk
    return out


def api_versions(sock):
    r = request(sock, API_VERSIONS, 0, 1, b"")
    err = r.i16()
    if err != 0:
        raise ValueError("ApiVersions error_code %d" % err)
    vers = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        vers[k] = (lo, hi)
    return vers


def metadata(sock, version, topics, corr=2):
    # Non-flexible Metadata request, v0..v8.
    if topics is None:
        # v0: empty array means "all"; v1+: null array means "all".
        body = struct.pack(">i", 0 if version == 0 else -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(enc_string(t) for t in topics)
    if version >= 4:
        body += struct.pack(">b", 1)  # allow_auto_topic_creation
    if version >= 8:
        body += struct.pack(">bb", 0, 0)  # include_{cluster,topic}_authorized_operations
    r = request(sock, API_METADATA, version, corr, body)
    if version >= 3:
        r.i32()  # throttle_time_ms

    def broker():
        node = r.i32()
        host = r.string()
        port = r.i32()
        if version >= 1:
            r.string()  # rack
        return (node, host, port)

    brokers = r.array(broker)
    if version >= 2:
        r.string()  # cluster_id
    if version >= 1:
        r.i32()  # controller_id

    def partition():
        err = r.i16()
        pid = r.i32()
        leader = r.i32()
        if version >= 7:
            r.i32()  # leader_epoch
        r.array(r.i32)  # replicas
        r.array(r.i32)  # isr
        if version >= 5:
            r.array(r.i32)  # offline_replicas
        return (err, pid, leader)

    def topic():
        err = r.i16()
        name = r.string()
        if version >= 1:
            r.i8()  # is_internal
        parts = r.array(partition)
        if version >= 8:
            r.i32()  # topic_authorized_operations
        return (err, name, parts)

    topics_out = r.array(topic)
    return brokers, topics_out


def pick_metadata_version(vers):
    lo, hi = vers.get(API_METADATA, (0, 0))
    v = min(hi, 8)
    if v < lo:
        raise ValueError("broker supports Metadata only v%d..v%d" % (lo, hi))
    return v


def connect(host, port, timeout):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def cmd_ready(host, port, timeout, min_brokers=1):
    with connect(host, port, timeout) as s:
        vers = api_versions(s)
        mv = pick_metadata_version(vers)
        brokers, _ = metadata(s, mv, None)
    if len(brokers) < min_brokers:
        print("%d of %d brokers registered yet" % (len(brokers), min_brokers), file=sys.stderr)
        return 1
    print("brokers: " + ", ".join("%d@%s:%d" % b for b in brokers))
    return 0


def cmd_topic(host, port, name, timeout):
    deadline = time.monotonic() + timeout
    last = None
    corr = 10
    while True:
        try:
            with connect(host, port, 5) as s:
                mv = pick_metadata_version(api_versions(s))
                while True:
                    corr += 1
                    _, topics = metadata(s, mv, [name], corr)
                    for err, tname, parts in topics:
                        if tname != name:
                            continue
                        last = "error_code=%d partitions=%d" % (err, len(parts or []))
                        if err == 0 and parts and all(p[0] == 0 and p[2] >= 0 for p in parts):
                            print("topic %s partitions %d" % (name, len(parts)))
                            return 0
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
        except (OSError, ValueError) as e:
            last = str(e)
        if time.monotonic() > deadline:
            print("topic %s not ready: %s" % (name, last), file=sys.stderr)
            return 1
        time.sleep(0.2)


def cmd_leader(host, port, name, partition, timeout):
    with connect(host, port, timeout) as s:
        mv = pick_metadata_version(api_versions(s))
        _, topics = metadata(s, mv, [name])
    for err, tname, parts in topics:
        if tname != name:
            continue
        for perr, pid, leader in parts or []:
            if pid == partition:
                print(leader)
                return 0
    print("topic %s partition %d unknown" % (name, partition), file=sys.stderr)
    return 1


API_CREATE_PARTITIONS = 37


def cmd_partitions(host, port, name, count, timeout):
    body = struct.pack(">i", 1) + enc_string(name) + struct.pack(">ii", count, -1)
    body += struct.pack(">ib", int(timeout * 1000), 0)
    with connect(host, port, timeout + 5) as s:
        r = request(s, API_CREATE_PARTITIONS, 1, 7, body)
    r.i32()  # throttle_time_ms
    for _ in range(r.i32()):
        tname, err, msg = r.string(), r.i16(), r.string()
        if tname == name and err != 0:
            print("CreatePartitions %s: error %d %s" % (name, err, msg or ""), file=sys.stderr)
            return 1
    print("topic %s now has %d partitions" % (name, count))
    return 0


def main(argv):
    if len(argv) >= 5 and argv[0] == "partitions":
        timeout = float(argv[5]) if len(argv) > 5 else 10.0
        try:
            return cmd_partitions(argv[1], int(argv[2]), argv[3], int(argv[4]), timeout)
        except (OSError, ValueError) as e:
            print("no answer: %s" % e, file=sys.stderr)
            return 1
    if len(argv) >= 5 and argv[0] == "leader":
        timeout = float(argv[5]) if len(argv) > 5 else 5.0
        try:
            return cmd_leader(argv[1], int(argv[2]), argv[3], int(argv[4]), timeout)
        except (OSError, ValueError) as e:
            print("no answer: %s" % e, file=sys.stderr)
            return 1
    if len(argv) >= 3 and argv[0] == "ready":
        timeout = float(argv[3]) if len(argv) > 3 else 3.0
        min_brokers = int(argv[4]) if len(argv) > 4 else 1
        try:
            return cmd_ready(argv[1], int(argv[2]), timeout, min_brokers)
        except (OSError, ValueError) as e:
            print("not ready: %s" % e, file=sys.stderr)
            return 1
    if len(argv) >= 4 and argv[0] == "topic":
        timeout = float(argv[4]) if len(argv) > 4 else 20.0
        return cmd_topic(argv[1], int(argv[2]), argv[3], timeout)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
