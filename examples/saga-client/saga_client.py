#!/usr/bin/python3
"""saga_client.py - start a saga on a keel node and follow it to the end,
from Python: pyzmq, and protobuf classes generated from keel's schemas/.

usage: saga_client.py NAME [--input JSON] [--key KEY] [--bus EP]
                      [--events EP] [--timeout MS] [--gen DIR] [--schemas DIR]

The same program as saga_client.c, written against the wire contract alone
(schemas/envelope.proto, schemas/saga.proto), to show what any language
needs to speak keel. The wire, as keel's C code speaks it:

  request/reply   DEALER --connect--> node front door (a ROUTER)
                  sent:      [Envelope]   one frame, nothing before it: no
                  received:  [Envelope]   empty delimiter (not REQ/REP); the
                                          ROUTER adds and strips the identity
  events          SUB --connect--> node event endpoint (an XPUB)
                  received:  [type][Envelope]   the type frame is the topic,
                                                so subscribe to "saga."

  Envelope (keel.Envelope):
      version = 1, kind = REQUEST, type = "saga.start", correlation_id =
      any 64-bit number (the reply echoes it), sender = who we are,
      service = "saga" (the node relays to the actor of that name),
      timeout_ms = the deadline as milliseconds left (relative, so clocks
      need not agree), payload = the bytes of the typed message (here a
      keel.StartRequest). A reply has kind REPLY, the same correlation_id,
      error_code (OK = 0) and error_text, and its payload (a SagaStatus).
      An event has kind EVENT, sender, sequence 1, 2, 3... per sender, and
      its payload (a SagaEvent).

What it does: subscribe to "saga." and wait until that connection is up
(PUB/SUB drops what is published before a subscription arrives: the slow
joiner), ping the coordinator, send saga.start, print the events of that
saga as they come until saga.completed, saga.compensated or saga.stuck, ask
saga.status and print it. Events are at most once: after a second without
one, it asks saga.status whether the saga has ended rather than wait
forever. Exit codes: 0 completed; 1 compensated, stuck or start refused;
2 usage (or the classes cannot be generated); 3 node unreachable, saga not
ended within --timeout, or interrupted.

The classes: `protoc --proto_path=SCHEMAS --python_out=DIR SCHEMAS/*.proto`
into a temporary directory (removed at exit), or into --gen DIR when they
are not there yet (then kept, and used as they are next time). protoc comes
with Debian's protobuf-compiler; pyzmq and protobuf with python3-zmq and
python3-protobuf (Debian's, for /usr/bin/python3).
"""
import argparse
import glob
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE, EXIT_AWAY = 0, 1, 2, 3
REQUEST_TIMEOUT = 5000  # ms at most per request
QUIET_MS = 1000  # no event for this long: ask saga.status
WIRE_VERSION = 1  # Envelope.version this speaks

try:
    import zmq
    from zmq.utils.monitor import recv_monitor_message
    importlib.import_module("google.protobuf")  # the generated code needs it
except ImportError as error:
    print(
        "saga_client: %s: install python3-zmq and python3-protobuf "
        "(Debian's), and run with /usr/bin/python3" % error,
        file=sys.stderr,
    )
    sys.exit(EXIT_USAGE)


def fail(code, text):
    print("saga_client: " + text, file=sys.stderr)
    return code


def load_classes(gen_dir, schemas):
    """Import envelope_pb2 and saga_pb2 from gen_dir, generating every
    schema there first if they are missing. Returns the two modules, or
    raises RuntimeError saying what is wrong."""
    wanted = ("envelope_pb2", "saga_pb2")
    there = [os.path.join(gen_dir, m + ".py") for m in wanted]
    if not all(os.path.exists(path) for path in there):
        protos = sorted(glob.glob(os.path.join(schemas, "*.proto")))
        if not protos:
            raise RuntimeError("no .proto in %s (see --schemas)" % schemas)
        protoc = shutil.which("protoc")
        if not protoc:
            raise RuntimeError(
                "protoc not found on PATH: install protobuf-compiler, "
                "or give --gen DIR holding classes generated before"
            )
        run = subprocess.run(
            [protoc, "--proto_path=" + schemas, "--python_out=" + gen_dir]
            + protos,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise RuntimeError("protoc failed: " + run.stderr.strip())
    sys.path.insert(0, gen_dir)
    return [importlib.import_module(m) for m in wanted]


class Bus:
    """Requests to one service through a node's front door, one at a time,
    each with a deadline; framed exactly as keel_client frames them."""

    def __init__(self, ctx, pb, service, sender):
        self.pb = pb
        self.service = service
        self.sender = sender
        self.next_id = random.getrandbits(64) or 1
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 100  # deliver what was sent, never hang at exit

    def call(self, type_, payload, timeout_ms, key=""):
        """Send a request of type_ with payload bytes (and an idempotency
        key, for the server's dedupe); wait at most timeout_ms. Returns
        (error_code, error_text, reply payload bytes); error_code TIMEOUT
        when nothing came back in time. One attempt: no retries here
        (keel_client retries idempotent calls)."""
        env = self.pb.Envelope(
            version=WIRE_VERSION,
            kind=self.pb.REQUEST,
            type=type_,
            correlation_id=self.next_id,
            sender=self.sender,
            service=self.service,
            timeout_ms=timeout_ms,
            idempotency_key=key,
            payload=payload,
        )
        self.next_id = (self.next_id + 1) % 2**64 or 1
        self.sock.send(env.SerializeToString())  # one frame: the envelope
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000) + 1):
                text = "no reply within %d ms" % timeout_ms
                return self.pb.TIMEOUT, text, b""
            frame = self.sock.recv()
            try:
                reply = self.pb.Envelope.FromString(frame)
            except Exception:
                continue  # not an envelope: not ours
            # A late reply to an earlier request has another id: skip it.
            if (
                reply.kind == self.pb.REPLY
                and reply.correlation_id == env.correlation_id
            ):
                return reply.error_code, reply.error_text, reply.payload

    def close(self):
        self.sock.close()


def errname(pb, code):
    """OK, TIMEOUT, ... as in envelope.proto (unknown codes: the number)."""
    try:
        return pb.ErrorCode.Name(code)
    except ValueError:
        return str(code)


def bare_name(enum, value):
    """SAGA_COMPLETED -> "completed", STEP_DONE -> "done"."""
    try:
        name = enum.Name(value)
    except ValueError:
        return "unknown"
    return name.split("_", 1)[-1].lower()


class Client:
    def __init__(self, args, envelope_pb2, saga_pb2):
        self.args = args
        self.pb = envelope_pb2
        self.saga = saga_pb2
        self.ctx = zmq.Context()
        # Subscribe before connecting, so the subscription goes out with the
        # connection, and watch the socket to know when it is connected.
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.setsockopt(zmq.SUBSCRIBE, b"saga.")
        self.monitor = self.sub.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        # Requests to the actor "saga", through the node's front door.
        self.bus = Bus(self.ctx, envelope_pb2, "saga", "saga-client-py")

    def connect(self):
        """Connect both sockets; raises zmq.ZMQError on a bad endpoint."""
        self.sub.connect(self.args.events)
        self.bus.sock.connect(self.args.bus)

    def close(self):
        self.sub.disable_monitor()
        self.monitor.close()
        self.sub.close()
        self.bus.close()
        self.ctx.term()

    def left(self, deadline):
        """Milliseconds left before deadline, at most REQUEST_TIMEOUT, >= 1."""
        left = int((deadline - time.monotonic()) * 1000)
        return max(1, min(left, REQUEST_TIMEOUT))

    def status(self, saga_id, timeout_ms):
        code, text, payload = self.bus.call(
            "saga.status",
            self.saga.SagaRef(id=saga_id).SerializeToString(),
            timeout_ms,
        )
        if code != self.pb.OK:
            fail(0, "saga.status: %s: %s" % (errname(self.pb, code), text))
            return None
        return self.saga.SagaStatus.FromString(payload)

    def final(self, state):
        s = self.saga
        return state in (s.SAGA_COMPLETED, s.SAGA_COMPENSATED, s.SAGA_STUCK)

    def next_event(self, timeout_ms):
        """The next event as (type, SagaEvent), or None after timeout_ms."""
        if not self.sub.poll(timeout_ms):
            return None
        frames = self.sub.recv_multipart()  # [type][envelope]
        try:
            env = self.pb.Envelope.FromString(frames[-1])
            if len(frames) != 2 or env.kind != self.pb.EVENT:
                return ("", None)
            return (env.type, self.saga.SagaEvent.FromString(env.payload))
        except Exception:
            return ("", None)  # malformed: skip it

    def follow(self, saga_id, deadline):
        """Print the events of saga_id until one says it ended. True if it
        did before the deadline."""
        ends = ("saga.completed", "saga.compensated", "saga.stuck")
        while time.monotonic() < deadline:
            got = self.next_event(QUIET_MS)
            if got is None:
                # Quiet: events are at most once, so ask the saga itself.
                st = self.status(saga_id, self.left(deadline))
                if st is not None and self.final(st.state):
                    print("(the saga ended; its last events were missed)")
                    return True
                continue
            type_, ev = got
            if ev is None or ev.id != saga_id:
                continue
            line = type_ + (" " + ev.step if ev.step else "")
            print(line + (": " + ev.error if ev.error else ""), flush=True)
            if type_ in ends:
                return True
        return False

    def print_status(self, st):
        state = bare_name(self.saga.SagaState, st.state)
        print(
            "final state: %s%s"
            % (state, " -- " + st.last_error if st.last_error else "")
        )
        for step in st.steps:
            line = "  %-10s %-12s attempts %u" % (
                step.name,
                bare_name(self.saga.StepState, step.state),
                step.attempts,
            )
            if step.compensation_attempts:
                line += ", compensations %u" % step.compensation_attempts
            print(line)

    def run(self):
        args = self.args
        deadline = time.monotonic() + args.timeout / 1000
        # 1. The subscription is connected (or the events endpoint is away).
        if not self.monitor.poll(self.left(deadline)):
            return fail(EXIT_AWAY, "no connection to events at " + args.events)
        event = recv_monitor_message(self.monitor)
        if event["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return fail(EXIT_AWAY, "no connection to events at " + args.events)
        # 2. The coordinator answers, through the node (keel.ping: empty
        # payload; the reply is a keel.Pong we do not need).
        code, text, _ = self.bus.call("keel.ping", b"", self.left(deadline))
        if code != self.pb.OK:
            return fail(
                EXIT_AWAY,
                "no saga coordinator at %s: %s: %s"
                % (args.bus, errname(self.pb, code), text),
            )
        # 3. Start.
        req = self.saga.StartRequest(
            definition=args.name,
            input=args.input.encode(),
            idempotency_key=args.key or "",
        )
        code, text, payload = self.bus.call(
            "saga.start",
            req.SerializeToString(),
            self.left(deadline),
            key=req.idempotency_key,
        )
        if code != self.pb.OK:
            name = errname(self.pb, code)
            fail(0, "saga.start: %s: %s" % (name, text))
            # TIMEOUT/UNAVAILABLE: it may or may not have started.
            away = code in (self.pb.TIMEOUT, self.pb.UNAVAILABLE)
            return EXIT_AWAY if away else EXIT_FAILED
        st = self.saga.SagaStatus.FromString(payload)
        print(
            "saga %s started (%s v%u)" % (st.id, st.definition, st.version),
            flush=True,
        )
        # 4. Follow, unless it had already ended (the same key again).
        if not self.final(st.state) and not self.follow(st.id, deadline):
            return fail(
                EXIT_AWAY,
                "saga %s has not ended (yet): `keel saga status %s`"
                % (st.id, st.id),
            )
        # 5. The whole story, from the coordinator.
        final = self.status(st.id, REQUEST_TIMEOUT)
        if final is None:
            return EXIT_AWAY
        self.print_status(final)
        if final.state == self.saga.SAGA_COMPLETED:
            return EXIT_COMPLETED
        return EXIT_FAILED


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(
        prog="saga_client.py", description="Start a keel saga and follow it."
    )
    p.add_argument("name", metavar="NAME", help="saga definition to start")
    p.add_argument("--input", default="{}", metavar="JSON",
                   help="handed to every step (default {})")
    p.add_argument("--key", metavar="KEY",
                   help="idempotency key: same key, same saga")
    p.add_argument("--bus", default="tcp://127.0.0.1:7700", metavar="EP",
                   help="node front door (default %(default)s)")
    p.add_argument("--events", default="tcp://127.0.0.1:7701", metavar="EP",
                   help="node events (default %(default)s)")
    p.add_argument("--timeout", type=int, default=30000, metavar="MS",
                   help="budget for the whole run (default 30000)")
    p.add_argument("--gen", metavar="DIR",
                   help="generated classes: used if there, else made there")
    p.add_argument("--schemas", metavar="DIR",
                   default=os.path.join(here, "..", "..", "schemas"),
                   help="the .proto files (default: the checkout's)")
    args = p.parse_args(argv)
    if not 0 < args.timeout <= 86400000:
        p.error("--timeout takes milliseconds, 1..86400000")
    try:
        json.loads(args.input)
    except ValueError:
        p.error("--input is not JSON")
    return args


def main(argv):
    args = parse_args(argv)  # exits 2 on a usage error
    tmp = None if args.gen else tempfile.mkdtemp(prefix="keel-pb-")
    try:
        if args.gen:
            os.makedirs(args.gen, exist_ok=True)
        try:
            gen_dir = args.gen or tmp
            envelope_pb2, saga_pb2 = load_classes(gen_dir, args.schemas)
        except (RuntimeError, OSError) as error:
            return fail(EXIT_USAGE, str(error))
        client = Client(args, envelope_pb2, saga_pb2)
        try:
            try:
                client.connect()
            except zmq.ZMQError as error:
                return fail(EXIT_USAGE, "invalid endpoint: %s" % error)
            return client.run()
        except KeyboardInterrupt:
            return fail(EXIT_AWAY, "interrupted")
        finally:
            client.close()
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
