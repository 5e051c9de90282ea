"""A ledger connection of its own (the daemon parts' shared rules): one run at a time, none
after close, and never a connection closed under a running query (that crashed the daemon with
SIGSEGV)."""

import asyncio
import logging
import sqlite3
import threading

import pytest

from collector.ledger.worker import LedgerWorker

STILL = "a test run was still going at exit"


class Worker(LedgerWorker):
    """Records when close asks the run in progress to stop."""

    def __init__(self, path):
        super().__init__(path, still_running=STILL)
        self.asked_to_stop = threading.Event()

    def _stopping(self):
        self.asked_to_stop.set()


@pytest.fixture
def worker(tmp_path):
    return Worker(tmp_path / "ledger.db")


def query(worker):
    return worker.ledger.db.execute("SELECT count(*) FROM streams").fetchone()[0]


def closed(worker):
    try:
        query(worker)
    except sqlite3.ProgrammingError:
        return True
    return False


def start_run(worker, work):
    """``work`` as a run in a thread, once ``proceed`` is set: (thread, proceed, results)."""
    started, proceed, results = threading.Event(), threading.Event(), []

    def run():
        started.set()
        proceed.wait(30)
        return work()

    thread = threading.Thread(target=lambda: results.append(worker.run_now(run)), daemon=True)
    thread.start()
    assert started.wait(10)
    return thread, proceed, results


def test_close_waits_for_the_run_in_progress_then_closes(worker):
    run, proceed, results = start_run(worker, lambda: query(worker))
    closer = threading.Thread(target=worker.close, kwargs={"wait": 30}, daemon=True)
    closer.start()
    assert worker.asked_to_stop.wait(10)
    closer.join(0.2)
    assert closer.is_alive()  # still waiting: the run holds the connection
    proceed.set()
    run.join(10)
    closer.join(10)
    assert results == [0]  # the run's query ran on an open connection
    assert closed(worker)


def test_past_the_wait_the_connection_is_left_to_the_run(worker, caplog):
    run, proceed, results = start_run(worker, lambda: query(worker))
    with caplog.at_level(logging.WARNING, logger="collector.daemon"):
        worker.close(wait=0)
    assert STILL in caplog.text
    proceed.set()
    run.join(10)
    assert results == [0]  # not closed under it
    assert not closed(worker)
    worker.ledger.close()


def test_no_run_starts_once_closed(worker):
    worker.close()
    assert worker.closed and closed(worker)
    assert worker.run_now(lambda: pytest.fail("ran after close")) is None
    with worker.turn() as mine:
        assert not mine


def test_a_run_on_the_loop_is_skipped_while_another_one_is_going(worker):
    with worker.turn() as first, worker.turn() as second:
        assert (first, second) == (True, False)
    with worker.turn() as again:  # the first run's turn ended with its block
        assert again
    worker.close()


def test_close_waits_for_a_run_on_the_loop_to_end_its_turn(worker):
    """A report pass holds its turn across awaits; close (in a worker thread) waits for it."""

    async def pass_then_close():
        with worker.turn() as mine:
            closing = asyncio.create_task(asyncio.to_thread(worker.close, 30))
            await asyncio.to_thread(worker.asked_to_stop.wait, 10)
            during = query(worker)
        await closing
        return mine, during

    assert asyncio.run(pass_then_close()) == (True, 0)
    assert closed(worker)
