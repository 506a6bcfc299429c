"""Request bodies held at once are bounded: a flood of large calls is served or told to retry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time

import grpc
import psutil
from google.rpc import error_details_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from agenttop.otlp.budget import MIN_CHARGE, BodyBudget
from tests.test_bad_input import TRACES, span, traces_request
from tests.test_process import free_port, read_as_user, run_cli, start_serve, wait_listening

MIB = 2**20


def retry_delay(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a refusal, as the Python exporter reads it, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "google.rpc.retryinfo-bin":
            delay = error_details_pb2.RetryInfo.FromString(value).retry_delay
            return delay.seconds + delay.nanos / 1e9
    return None


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process and all its descendants (the decoding workers)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


# -- the budget itself -------------------------------------------------------------------------

def test_unread_calls_count_as_the_largest_message_until_read():
    async def scenario() -> None:
        budget = BodyBudget(limit_bytes=10 * MIB, largest_message_bytes=4 * MIB)
        first, second = await budget.admit(), await budget.admit()
        assert first == second == 4 * MIB and budget.held == 8 * MIB
        first = budget.resize(first, 1000)  # read: a small body
        assert first == MIN_CHARGE and budget.held == 4 * MIB + MIN_CHARGE
        third = await budget.admit()  # fits again now
        assert budget.held == 8 * MIB + MIN_CHARGE
        for charge in (first, second, third):
            budget.release(charge)
        assert budget.held == 0 and budget.refused == 0

    asyncio.run(scenario())


def test_a_message_larger_than_the_budget_gets_through_alone():
    async def scenario() -> None:
        budget = BodyBudget(limit_bytes=1 * MIB, largest_message_bytes=4 * MIB)
        charge = await budget.admit()
        assert charge == 4 * MIB
        budget.release(charge)
        assert budget.held == 0

    asyncio.run(scenario())


def test_a_waiting_call_is_admitted_when_bodies_are_released_in_order():
    async def scenario() -> None:
        budget = BodyBudget(limit_bytes=9 * MIB, largest_message_bytes=4 * MIB, max_wait_s=30)
        held = [await budget.admit(), await budget.admit()]
        waiters = [asyncio.create_task(budget.admit()) for _ in range(2)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        budget.release(held.pop())
        assert await waiters[0] == 4 * MIB and not waiters[1].done()
        budget.resize(held.pop(), 100)  # read and small: room for the second waiter
        assert await waiters[1] == 4 * MIB
        assert budget.held == 2 * 4 * MIB + MIN_CHARGE and budget.refused == 0

    asyncio.run(scenario())


def test_waiting_is_bounded_in_time_and_in_number():
    async def scenario() -> None:
        budget = BodyBudget(limit_bytes=512 * 1024, largest_message_bytes=512 * 1024,
                            max_wait_s=0.05)
        assert budget.max_waiting == 2
        held = await budget.admit()
        waiters = [asyncio.create_task(budget.admit()) for _ in range(2)]
        await asyncio.sleep(0)
        assert await budget.admit() is None  # a third may not even wait
        assert await asyncio.gather(*waiters) == [None, None]  # nothing was released
        assert budget.refused == 3 and budget.held == held
        budget.release(held)
        assert await budget.admit() == held  # and the queue was left empty

    asyncio.run(scenario())


def test_a_call_cancelled_while_waiting_or_just_admitted_leaks_nothing():
    async def scenario() -> None:
        budget = BodyBudget(limit_bytes=4 * MIB, largest_message_bytes=4 * MIB, max_wait_s=30)
        held = await budget.admit()
        gone, admitted_then_gone = (asyncio.create_task(budget.admit()) for _ in range(2))
        await asyncio.sleep(0)
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        budget.release(held)  # grants the next turn, which is cancelled before it runs
        admitted_then_gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await admitted_then_gone
        assert budget.held == 0
        assert await budget.admit() == 4 * MIB

    asyncio.run(scenario())


# -- a real receiver flooded with large calls --------------------------------------------------

BODY_MB, CLIENTS, REQUESTS_EACH = 12, 48, 1
BUDGET_MB = 32
# Idle, the receiver and its decoding worker take ~125 MB on Linux. This flood (576 MiB of
# bodies sent at one moment) took it to ~1.2 GB without the budget, and to ~310 MB with it
# (bodies are freed, but the allocator keeps some of their pages).
RSS_BOUND_MB = 400


def large_request(n: int) -> tuple[bytes, bytes]:
    """A one-span request of BODY_MB MiB (one huge attribute); returns (span_id, body)."""
    span_id = os.urandom(8)
    big = KeyValue(key="blob", value=AnyValue(string_value="x" * (BODY_MB * MIB)))
    return span_id, traces_request(span(n, trace_id=os.urandom(16), span_id=span_id,
                                        attributes=[big]))


def test_flood_of_large_calls_is_served_or_retried_within_the_memory_bound(tmp_path):
    db, port = tmp_path / "flood.db", free_port()
    proc = start_serve(db, port, "--max-message-mb", "16", "--max-inflight-mb", str(BUDGET_MB))
    try:
        wait_listening(proc, port)
        receiver = psutil.Process(proc.pid)
        served: list[str] = []
        refusals: list[float | None] = []
        failures: list[str] = []
        lock = threading.Lock()

        start = threading.Barrier(CLIENTS)

        def client(n: int) -> None:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                export = channel.unary_unary(TRACES)
                for i in range(REQUESTS_EACH):
                    span_id, body = large_request(n * REQUESTS_EACH + i)
                    if i == 0:
                        start.wait(60)  # every client's first call at the same moment
                    for _attempt in range(100):
                        try:
                            export(body, timeout=60)
                        except grpc.RpcError as e:
                            delay = retry_delay(e)
                            with lock:
                                if e.code() != grpc.StatusCode.UNAVAILABLE:
                                    failures.append(f"{e.code().name}: {e.details()}")
                                    return
                                refusals.append(delay)
                            time.sleep(delay or 0.1)
                        else:
                            with lock:
                                served.append(span_id.hex())
                            break

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        peak = tree_rss(receiver)
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, tree_rss(receiver))
            time.sleep(0.01)

        assert not failures
        assert all(delay is not None and 0 < delay <= 5 for delay in refusals), refusals
        assert len(served) == CLIENTS * REQUESTS_EACH
        assert peak < RSS_BOUND_MB * MIB, f"receiver grew to {peak / MIB:.0f} MB"
        # A well-formed client is served afterwards, and everything acknowledged is stored.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            channel.unary_unary(TRACES)(traces_request(span(1)), timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        stored = {r[0] for r in read_as_user(db).execute("SELECT span_id FROM spans")}
        assert stored == {*served, span(1).span_id.hex()}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


def test_the_budget_is_a_checked_serve_option():
    result = run_cli("serve", "--max-inflight-mb", "0")
    assert result.returncode == 2 and "--max-inflight-mb" in result.stderr
    assert "--max-inflight-mb" in run_cli("serve", "--help").stdout


# -- slow and idle clients ---------------------------------------------------------------------

def test_idle_and_trickling_clients_cannot_starve_a_good_one(make_server):
    """4 gRPC calls that never send their message (each charged the largest message: the
    whole 64 MiB budget) and 8 HTTP bodies trickled a byte at a time, all held open while a
    well-behaved client, retrying as OTLP exporters do, sends 40 requests."""
    import socket

    service = make_server(http="127.0.0.1:0", max_message_mb=16, max_inflight_mb=64,
                          body_timeout_s=1.0)
    stop = threading.Event()

    def never_sends():
        stop.wait(60)  # opens the call, sends nothing
        yield from ()

    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    idle = [channel.stream_unary(TRACES).future(never_sends(), timeout=60) for _ in range(4)]

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", service.http_port)) as s:
            s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/x-protobuf\r\nContent-Length: 1000000\r\n\r\n")
            with contextlib.suppress(OSError):
                while not stop.wait(0.2):
                    s.sendall(b"\x00")

    tricklers = [threading.Thread(target=trickle) for _ in range(8)]
    for t in tricklers:
        t.start()
    time.sleep(0.5)  # all of them are in and holding what they hold
    succeeded = 0
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}") as good:
            export = good.unary_unary(TRACES)
            for n in range(40):
                for _ in range(6):  # the SDK exporter's tries, at the delay it is told
                    try:
                        export(traces_request(span(n)), timeout=10)
                        succeeded += 1
                        break
                    except grpc.RpcError as e:
                        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                        time.sleep(retry_delay(e) or 0.05)
    finally:
        stop.set()
        for t in tricklers:
            t.join(10)
        for call in idle:
            with contextlib.suppress(grpc.RpcError, grpc.FutureCancelledError):
                call.result(timeout=10)
        channel.close()
    assert succeeded >= 38  # 95 %
    assert service.receiver.slow >= 4  # the idle calls were refused and let go
