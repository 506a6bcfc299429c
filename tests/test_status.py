"""The receiver's heartbeat row: readers can tell running, stopped and gone apart."""

from agenttop.serve import BackgroundService
from agenttop.store.status import STALE_AFTER_S, ReceiverStatus, read_status
from tests.conftest import read_db, serve_settings


def test_heartbeat_says_running_then_stopped(db_path):
    with BackgroundService(serve_settings(db_path)) as svc:
        status = read_status(read_db(db_path))
        assert status is not None and status.stopped_ns is None
        assert status.state(status.heartbeat_ns) == "running"
        assert status.status["receiver"]["grpc"] == svc.grpc_address
        assert status.status["receiver"]["security"] == "no token"
        assert status.status["receiver"]["unauthenticated"] == 0
    after = read_status(read_db(db_path))
    assert after.stopped_ns is not None and after.state(after.stopped_ns) == "stopped"
    assert after.started_ns == status.started_ns


def test_a_stale_heartbeat_means_gone():
    status = ReceiverStatus(pid=1, started_ns=0, heartbeat_ns=10**9, stopped_ns=None)
    assert status.state(10**9 + int(STALE_AFTER_S * 1e9) - 1) == "running"
    assert status.state(10**9 + int(STALE_AFTER_S * 1e9) + 1) == "gone"


def test_no_receiver_yet(db_path):
    from agenttop.store import open_writer

    open_writer(db_path).close()
    assert read_status(read_db(db_path)) is None
