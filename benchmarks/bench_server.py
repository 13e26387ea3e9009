"""Hospital-server benchmark over a real Mosquitto (TLS, client certificates): one server process.

    .venv/bin/python benchmarks/bench_server.py [--db URL] [--levels 250,500,1000,2000] [--seconds 10]

Measures, each step bounded to seconds or a few minutes:
1. sustained load: N pumps sending 1 status/s plus an event message per pump every 5 s, for each N; the
   server keeps up when the last message is handled within a second of being sent (the knee is the largest
   N that keeps up);
2. alarm latency pump -> server (alarm row stored, as the central station reads it) at a sustained load, and
   each alarm's path in the server process: sent, received by the link, taken by the handler, committed;
3. a burst of 1,000 alarms in 1 s;
4. a library release (72 kB package) staged on 1,000 online pumps: offers, chunk requests and acknowledgements
   through the server;
5. reconnection of 500 MQTT clients after a broker restart;
6. ``--phases profile`` (alone): the server's message handler in this process, without broker or network,
   fed ``--seconds`` of a ward of ``--levels``' first N pumps in link-sized batches, under cProfile after a
   first unprofiled second (every pump's first status): CPU per message (half the batches, unprofiled) and
   the functions it goes to (the other half, profiled).

Pumps are simulated at the protocol level by a load generator (a ``loadgen`` identity the benchmark's broker
ACL lets publish for every pump), so the server process is the one being measured. The server runs in a
process of its own; both processes are on this 2-core machine.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import pstats
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
from sqlalchemy import func, select

from openinfusion.agent import messages as m
from openinfusion.agent.link import MAX_BATCH
from openinfusion.agent.link.mqtt import Endpoint, MqttServerLink, up_topic
from openinfusion.agent.ward import ward_release, ward_trust
from openinfusion.druglib.yamlio import read_yaml
from openinfusion.server import fleet, library
from openinfusion.server.broker import SERVER_IDENTITY, Broker, client_files, free_port, write_config
from openinfusion.server.db.models import Alarm, Deployment, Event
from openinfusion.server.hospital import Hospital
from openinfusion.server.settings import Settings

LOADGEN = "loadgen"
ROOT = Path(__file__).resolve().parent.parent


ALARM: Final = b'"kind":"alarm_raised"'


def _id(data: bytes) -> str:
    start = data.index(b'"id":"') + 6
    return data[start : start + 32].decode()


class TracedQueue(queue.Queue[tuple[str, bytes] | None]):
    """The server link's inbound queue, noting when each alarm message was received (wall clock, s)."""

    def __init__(self, received: dict[str, float]) -> None:
        super().__init__()
        self.received = received

    def put(self, item: tuple[str, bytes] | None, block: bool = True, timeout: float | None = None) -> None:
        if item is not None and ALARM in item[1]:
            self.received[_id(item[1])] = time.time()
        super().put(item, block, timeout)


def serve(settings: Settings, endpoint: Endpoint, trace: Path) -> None:
    """The server process; each alarm message's path goes to ``trace`` (JSON lines, wall-clock seconds): sent (the
    envelope's ``at``), received (the link's queue), taken (its batch reaches the handler), committed."""
    link = MqttServerLink(endpoint, "bench-server")
    received: dict[str, float] = {}
    link._queue = TracedQueue(received)
    hospital = Hospital(settings, link)
    handle_many, store = hospital.handle_many, hospital._store
    taken: dict[str, float] = {}

    def traced_handle(items: Sequence[tuple[str, bytes]]) -> None:
        t = time.time()
        taken.update((_id(data), t) for _, data in items if ALARM in data)
        handle_many(items)

    def traced_store(checked: list[tuple[str, m.UpMessage]]) -> None:
        store(checked)
        t = time.time()
        with trace.open("a") as out:
            for _, message in checked:
                if message.id in taken and isinstance(message.body, m.Events):
                    path = (message.at.timestamp(), received.pop(message.id), taken.pop(message.id), t)
                    out.write(json.dumps(path) + "\n")

    hospital.handle_many, hospital._store = traced_handle, traced_store  # type: ignore[method-assign]
    hospital.start()
    while True:
        time.sleep(3600)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LoadGen:
    """Publishes pump messages for many pump ids over a few connections; answers chunk offers as pumps do."""

    def __init__(self, endpoint: Endpoint, clients: int = 5) -> None:
        self.clients = []
        self.offers: dict[str, m.LibraryOffer] = {}
        self.downloads: dict[str, int] = {}
        self.lock = threading.Lock()
        for i in range(clients):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{LOADGEN}-{i}", protocol=mqtt.MQTTv5)
            c.tls_set(ca_certs=str(endpoint.ca), certfile=str(endpoint.cert), keyfile=str(endpoint.key))
            c.max_inflight_messages_set(1000)
            c.max_queued_messages_set(0)
            if i == 0:
                c.on_message = self._down
            c.connect(endpoint.host, endpoint.port, keepalive=30)
            c.loop_start()
            self.clients.append(c)
        time.sleep(1.0)
        self.clients[0].subscribe("oi/v1/pumps/+/down", qos=1)
        self.n = 0

    def send(self, pump: str, body: Any, own: bool = False) -> None:
        """``own``: on a connection of its own (the last), as a pump's message is not behind other pumps' on its
        way to the broker; else on the other connections in turn."""
        self.n += 1
        data = m.encode(m.up(pump, now(), body))
        client = self.clients[-1] if own else self.clients[self.n % (len(self.clients) - 1)]
        client.publish(up_topic(pump), data, qos=1)

    def _down(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        pump = message.topic.split("/")[3]
        body = m.decode_down(bytes(message.payload)).body
        if isinstance(body, m.LibraryOffer):
            with self.lock:
                if pump in self.downloads:
                    return
                self.offers[pump], self.downloads[pump] = body, 0
            self.send(pump, m.ChunkRequest(release=body.release, offset=0))
        elif isinstance(body, m.LibraryChunk):
            offer = self.offers[pump]
            size = len(body.data) * 3 // 4 - body.data.count("=")
            done = body.offset + size
            if done < offer.size:
                self.send(pump, m.ChunkRequest(release=body.release, offset=done))
            else:
                self.send(pump, m.CommandAck(command=body.release, outcome="staged", reason="verified"))

    def close(self) -> None:
        for c in self.clients:
            c.loop_stop()
            c.disconnect()


def status(library_: m.WireLibrary | None, last_seq: int) -> m.Status:
    zero = m.WireQuantity(value="0", unit="mL")
    return m.Status(
        model="bench", firmware="1", t_us=last_seq, phase="running", on_mains=True, battery_permille=800,
        battery_remaining=m.WireQuantity(value="3600", unit="s"), library=library_, staged_library=None,
        last_seq=last_seq, alarms=(),
        channels=(m.ChannelReport(index=0, state="infusing", drug="heparin",
                                  rate=m.WireQuantity(value="12.5", unit="mL/h"), infused=zero),),
    )  # fmt: skip


class Pumps:
    def __init__(self, gen: LoadGen, ids: list[str]) -> None:
        self.gen, self.ids = gen, ids
        self.seq = dict.fromkeys(ids, 0)

    def event(
        self, pump: str, kind: str = "volume_report", data: dict[str, Any] | None = None, own: bool = False
    ) -> None:
        self.seq[pump] += 1
        record = m.EventRecord(
            seq=self.seq[pump], t_us=self.seq[pump], at=now(), kind=kind, channel=0, data=data or {"n": self.seq[pump]}
        )
        self.gen.send(pump, m.Events(events=(record,)), own)


def stored(hospital: Hospital) -> int:
    with hospital.sessions() as db:
        return int(db.execute(select(func.count()).select_from(Event)).scalar_one())


def wait_events(hospital: Hospital, target: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if stored(hospital) >= target:
            return time.monotonic() - start
        time.sleep(0.05)
    return float("inf")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sustained(hospital: Hospital, pumps: Pumps, n: int, seconds: int, server_pid: int) -> dict[str, float]:
    ids = pumps.ids[:n]
    before = stored(hospital)
    cpu = cpu_s(server_pid)
    events = 0
    start = time.monotonic()
    for second in range(seconds):
        tick = start + second
        for i, pump in enumerate(ids):
            pumps.gen.send(pump, status(None, pumps.seq[pump]))
            if (i + second) % 5 == 0:
                pumps.event(pump)
                events += 1
        slack = tick + 1 - time.monotonic()
        if slack > 0:
            time.sleep(slack)
    offered_s = time.monotonic() - start
    lag = wait_events(hospital, before + events, 60)
    per_msg = (cpu_s(server_pid) - cpu) / (n * seconds + events)
    return {"pumps": n, "msgs_per_s": (n * seconds + events) / offered_s, "send_s": offered_s, "drain_lag_s": lag,
            "server_cpu_us_per_msg": 1e6 * per_msg}  # fmt: skip


def alarm_latency(hospital: Hospital, pumps: Pumps, ids: list[str], pace_s: float, own: bool) -> list[float]:
    sent: dict[str, float] = {}
    for pump in ids:
        pumps.event(pump, "alarm_raised", {"instance": pumps.seq[pump] + 1, "code": "occlusion_downstream",
                                           "priority": "high", "text": "bench"}, own)  # fmt: skip
        sent[pump] = time.time()
        if pace_s:
            time.sleep(pace_s)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with hospital.sessions() as db:
            rows = list(db.execute(select(Alarm.pump_id, Alarm.received_at).where(Alarm.pump_id.in_(ids))).all())
        if len(rows) >= len(ids):
            return sorted(received.timestamp() - sent[pump] for pump, received in rows)
        time.sleep(0.1)
    raise RuntimeError("alarms did not all arrive")


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


STAGES: Final = ("sent->received", "received->taken", "taken->committed", "sent->committed")


def stages(trace: Path, skip: int) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) of each stage of the alarm messages traced after the first ``skip`` lines of ``trace``."""
    time.sleep(0.5)  # the server's last lines
    paths = [json.loads(line) for line in trace.read_text().splitlines()[skip:]]
    out = {}
    for name, (a, b) in zip(STAGES, ((0, 1), (1, 2), (2, 3), (0, 3)), strict=True):
        ms = sorted(1000 * (p[b] - p[a]) for p in paths)
        out[name] = {"p50_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99)}
    print("  " + ", ".join(f"{k} p50 {v['p50_ms']:.0f} p99 {v['p99_ms']:.0f} ms" for k, v in out.items()))
    return out


def trace_lines(trace: Path) -> int:
    return len(trace.read_text().splitlines()) if trace.exists() else 0


def profile_handler(n: int, seconds: int, db: str | None) -> None:
    """CPU time of :meth:`Hospital.handle_many` for ``seconds`` of ``n`` pumps (statuses + events), profiled."""
    work = Path(tempfile.mkdtemp(prefix="oi-profile-"))
    hospital = Hospital(Settings(data_dir=work / "server", db_url=db))
    ids = [f"b-{i:05d}" for i in range(n)]
    with hospital.sessions.begin() as session:
        for i, pump in enumerate(ids):
            fleet.commission(session, pump, care_area=f"AREA-{i % 4}", location="", actor="bench", ca=None)
    seq = dict.fromkeys(ids, 0)
    messages: list[tuple[str, bytes]] = []
    for second in range(seconds):
        for i, pump in enumerate(ids):
            messages.append((pump, m.encode(m.up(pump, now(), status(None, seq[pump])))))
            if (i + second) % 5 == 0:
                seq[pump] += 1
                record = m.EventRecord(seq=seq[pump], t_us=seq[pump], at=now(), kind="volume_report", channel=0,
                                       data={"n": seq[pump]})  # fmt: skip
                messages.append((pump, m.encode(m.up(pump, now(), m.Events(events=(record,))))))
    warm = messages[: n + n // 5]  # the first second: each pump's first status takes the slow path
    for i in range(0, len(warm), MAX_BATCH):
        hospital.handle_many(warm[i : i + MAX_BATCH])
    messages = messages[len(warm) :]
    batches = [messages[i : i + MAX_BATCH] for i in range(0, len(messages), MAX_BATCH)]
    half = len(batches) // 2
    cpu = time.process_time()
    for batch in batches[:half]:  # timed without the profiler's overhead
        hospital.handle_many(batch)
    hospital.flush_statuses()
    cpu = time.process_time() - cpu
    count = sum(len(b) for b in batches[:half])
    print(f"handler: {count} messages of {n} pumps in {cpu:.2f} s CPU: {1e6 * cpu / count:.0f} us per message")
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches[half:]:
        hospital.handle_many(batch)
    hospital.flush_statuses()
    profiler.disable()
    hospital.stop()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=None)
    parser.add_argument("--levels", default="250,500,1000,2000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--release-pumps", type=int, default=1000)
    parser.add_argument("--reconnect-clients", type=int, default=500)
    parser.add_argument("--phases", default="load,alarms,release,reconnect")
    parser.add_argument(
        "--alarm-connection",
        choices=("shared", "own"),
        default="shared",
        help="alarms on the load's connections (behind other pumps' statuses) or on one of their own",
    )
    parser.add_argument("--release-status-every", type=int, default=5, help="seconds between a pump's statuses")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.phases == "profile":
        profile_handler(levels[0], args.seconds, args.db)
        return
    total = max(*levels, args.release_pumps, 1000)
    work = Path(tempfile.mkdtemp(prefix="oi-bench-"))
    settings = Settings(data_dir=work / "server", db_url=args.db, library_keys=ward_trust(1), reoffer_after_s=20)
    hospital = Hospital(settings)
    acl = f"user {LOADGEN}\ntopic write oi/v1/pumps/+/up\ntopic read oi/v1/pumps/+/down\n"
    files = write_config(work / "broker", hospital.ca, free_port(), extra_acl=acl)
    broker = Broker(files)
    broker.start()
    ids = [f"b-{i:05d}" for i in range(total)]
    with hospital.sessions.begin() as db:
        for i, pump in enumerate(ids):
            fleet.commission(db, pump, care_area=f"AREA-{i % 4}", location="", actor="bench", ca=None)
    server_endpoint = files.endpoint(*client_files(hospital.ca, SERVER_IDENTITY, work / "c"))
    server = mp.get_context("spawn").Process(
        target=serve,
        args=(dataclasses.replace(settings, library_keys=()), server_endpoint, work / "alarms.jsonl"),
        daemon=True,
    )
    server.start()
    time.sleep(4)
    gen = LoadGen(files.endpoint(*client_files(hospital.ca, LOADGEN, work / "c")))
    pumps = Pumps(gen, ids)
    for _ in range(60):  # wait until the server process is subscribed: a probe event is stored
        pumps.event(ids[0])
        if wait_events(hospital, 1, 1.0) < 1.0:
            break
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {"levels": []}
    for n in levels if "load" in phases else []:
        r = sustained(hospital, pumps, n, args.seconds, server.pid)
        results["levels"].append(r)
        print(
            f"sustained {n:>5} pumps: {r['msgs_per_s']:7.0f} msg/s offered, drained {r['drain_lag_s']:.2f} s after, "
            f"server process {r['server_cpu_us_per_msg']:.0f} us CPU per message"
        )
    keeping = [r["pumps"] for r in results["levels"] if r["drain_lag_s"] <= 1.0]
    results["knee_pumps"] = max(keeping) if keeping else 0
    load_n = results["knee_pumps"] or levels[0]
    stop = threading.Event()

    def background() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            for pump in ids[:load_n]:
                gen.send(pump, status(None, pumps.seq[pump]))
            stop.wait(max(0.0, 1 - (time.monotonic() - t0)))

    loader = threading.Thread(target=background, daemon=True)
    if "alarms" in phases:
        alarm_phases(
            hospital, pumps, ids, loader, stop, load_n, results, work / "alarms.jsonl", args.alarm_connection == "own"
        )
    if "release" in phases:
        release_phase(hospital, gen, pumps, ids, args, settings, results)
    gen.close()
    if "reconnect" in phases:
        reconnect_phase(hospital, files, broker, work, args, results)
    server.terminate()
    broker.stop()
    out = ROOT / "out" / "bench_server.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")


def alarm_phases(  # noqa: PLR0917 - the benchmark's shared state, passed as it is
    hospital: Hospital, pumps: Pumps, ids: list[str], loader: threading.Thread, stop: threading.Event,
    load_n: int, results: dict[str, Any], trace: Path, own: bool,
) -> None:  # fmt: skip
    loader.start()
    skip = trace_lines(trace)
    lat = alarm_latency(hospital, pumps, ids[:200], 0.05, own)
    stop.set()
    loader.join()
    results["alarm_latency_at_load"] = {"pumps": load_n, "p50_ms": 1000 * statistics.median(lat),
                                        "p99_ms": 1000 * pct(lat, 0.99)}  # fmt: skip
    print(
        f"alarm latency at {load_n} pumps: p50 {1000 * statistics.median(lat):.0f} ms, "
        f"p99 {1000 * pct(lat, 0.99):.0f} ms"
    )
    results["alarm_stages_at_load"] = stages(trace, skip)
    time.sleep(2)
    skip = trace_lines(trace)
    burst = alarm_latency(hospital, pumps, ids[200:1200], 0.001, own)
    results["alarm_burst_1000"] = {"p50_ms": 1000 * statistics.median(burst), "p99_ms": 1000 * pct(burst, 0.99)}
    print(f"burst of 1000 alarms: p50 {1000 * statistics.median(burst):.0f} ms, p99 {1000 * pct(burst, 0.99):.0f} ms")
    results["alarm_stages_burst"] = stages(trace, skip)


def release_phase(  # noqa: PLR0917 - the benchmark's shared state, passed as it is
    hospital: Hospital, gen: LoadGen, pumps: Pumps, ids: list[str], args: argparse.Namespace,
    settings: Settings, results: dict[str, Any],
) -> None:  # fmt: skip
    package = ward_release(read_yaml(ROOT / "examples/library/example-library.yaml").require(), 1)
    release_ids = ids[: args.release_pumps]
    with hospital.sessions.begin() as db:
        release = library.upload(db, package, "bench", settings.library_keys)
        library.target(db, release.id, [f"AREA-{i}" for i in range(4)], "bench")
        rid = release.id
    with hospital.sessions.begin() as db:
        for pump in ids[args.release_pumps :]:
            fleet.decommission(db, pump, actor="bench", ca=None)
    start = time.monotonic()
    done_at = None
    while time.monotonic() - start < 600:
        t0 = time.monotonic()
        second = int(time.monotonic() - start)
        for i, pump in enumerate(release_ids):
            if (i + second) % args.release_status_every == 0:
                gen.send(pump, status(None, pumps.seq[pump]))
        with hospital.sessions() as db:
            staged = db.execute(
                select(func.count())
                .select_from(Deployment)
                .where(Deployment.release_id == rid, Deployment.state == "staged")
            ).scalar_one()
        if staged >= len(release_ids):
            done_at = time.monotonic() - start
            break
        time.sleep(max(0.0, 1 - (time.monotonic() - t0)))
    results["release"] = {"pumps": len(release_ids), "package_bytes": len(package), "staged_all_s": done_at}
    print(f"release of {len(package)} bytes staged on {len(release_ids)} pumps in {done_at} s")


def reconnect_phase(  # noqa: PLR0917 - the benchmark's shared state, passed as it is
    hospital: Hospital, files: Any, broker: Broker, work: Path, args: argparse.Namespace, results: dict[str, Any]
) -> None:
    cert, keyf = client_files(hospital.ca, LOADGEN, work / "c")
    clients = []
    connected: set[str] = set()

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            connected.add(str(client._client_id.decode()))

    def on_disconnect(client: mqtt.Client, *_a: Any) -> None:
        connected.discard(str(client._client_id.decode()))

    for i in range(args.reconnect_clients):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"r-{i}", protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(files.ca), certfile=str(cert), keyfile=str(keyf))
        c.reconnect_delay_set(1, 30)
        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.connect_async("127.0.0.1", files.port, keepalive=10)
        c.loop_start()
        clients.append(c)
    t0 = time.monotonic()
    while len(connected) < len(clients) and time.monotonic() - t0 < 120:
        time.sleep(0.1)
    before = len(connected)
    broker.stop()
    while connected and time.monotonic() - t0 < 240:
        time.sleep(0.05)
    broker.start()
    t0 = time.monotonic()
    while len(connected) < before and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    back_s = time.monotonic() - t0
    results["reconnect"] = {"clients": len(clients), "connected_before": before, "back": len(connected), "s": back_s}
    print(f"reconnection after a broker restart: {len(connected)} of {before} connected clients back in {back_s:.1f} s")
    for c in clients:
        c.loop_stop()


if __name__ == "__main__":
    main()
