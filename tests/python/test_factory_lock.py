"""The drop-in factory's lock (`_native.ReentrantLock`, `threading.RLock`'s rules) and the
native create and cleanup that take it (`_native.ManagerTable`): a create or cleanup
never runs while another thread holds the factory's lock, the lock is free again after
every call (errors included), and the wrapper table follows the registry."""

import asyncio
import gc
import signal
import threading
import time
import uuid
import weakref
from datetime import datetime, timezone

import pytest

from threadline import _native
from threadline.netra import (
    IsolationViolationError,
    ManagerLimitError,
    UserExecutionContext,
    WebSocketConnection,
    WebSocketManagerFactory,
)

from conftest import RecordingWebSocket


def in_thread(fn):
    """Runs fn() in a new thread; returns (thread, results) where results gets fn's
    return value or exception."""
    results = []

    def run():
        try:
            results.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            results.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, results


def free_for_other_threads(lock):
    t, got = in_thread(lambda: lock.acquire(blocking=False) and (lock.release() or True))
    t.join(5)
    return got == [True]


def test_reentrant_lock_follows_rlock_rules():
    lock = _native.ReentrantLock()
    assert not lock._is_owned()
    with pytest.raises(RuntimeError):
        lock.release()
    assert lock.acquire() and lock.acquire(blocking=False) and lock.acquire(True, 0.5)
    assert lock._is_owned() and "locked count=3" in repr(lock)
    # Another thread can neither take nor release it.
    t, got = in_thread(lambda: lock.acquire(blocking=False))
    t.join(5)
    assert got == [False]
    t, got = in_thread(lock.release)
    t.join(5)
    assert isinstance(got[0], RuntimeError)
    t0 = time.monotonic()
    t, got = in_thread(lambda: lock.acquire(timeout=0.2))
    t.join(5)
    assert got == [False] and time.monotonic() - t0 >= 0.19
    lock.release()
    lock.release()
    assert not free_for_other_threads(lock)
    lock.release()
    assert not lock._is_owned() and free_for_other_threads(lock)
    with lock as entered:
        assert entered is True and lock._is_owned()
    assert free_for_other_threads(lock)
    with pytest.raises(ValueError):
        lock.acquire(False, 1.0)
    with pytest.raises(ValueError):
        lock.acquire(True, -2.0)
    with pytest.raises(ValueError):
        lock.acquire(True, float("nan"))


def test_a_waiting_thread_gets_the_lock_on_release_and_does_not_hold_the_gil():
    lock = _native.ReentrantLock()
    lock.acquire()
    t, got = in_thread(lambda: lock.acquire() and lock._is_owned() and (lock.release() or True))
    # While the other thread waits, this one runs Python code (the GIL is free).
    spins = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        spins += 1
    assert t.is_alive() and spins > 1000
    lock.release()
    t.join(5)
    assert got == [True] and free_for_other_threads(lock)


def ctx(user):
    return UserExecutionContext.from_websocket_request(user)


def conn(user):
    cid = f"c-{uuid.uuid4().hex[:8]}"
    return WebSocketConnection(cid, user, RecordingWebSocket(cid), datetime.now(timezone.utc), {})


def test_create_and_cleanup_wait_while_another_thread_holds_the_factory_lock():
    f = WebSocketManagerFactory()
    c = ctx("lock-user")
    with f._lock:
        t, got = in_thread(lambda: asyncio.run(f.create_manager(c)))
        t.join(0.2)
        assert t.is_alive() and len(f._registry) == 0 and f._wrappers == {}
    t.join(5)
    m = got[0]
    assert f._wrappers == {m.manager_id: m} and f._active_managers[c.isolation_key] is m
    with f._lock:
        t, got = in_thread(lambda: asyncio.run(f.cleanup_manager(c.isolation_key)))
        t.join(0.2)
        assert t.is_alive() and len(f._registry) == 1
    t.join(5)
    assert got == [True] and f._wrappers == {} and len(f._registry) == 0
    assert free_for_other_threads(f._lock)


def test_create_and_cleanup_run_under_the_lock_held_by_the_same_thread():
    f = WebSocketManagerFactory()
    c = ctx("reentrant-user")
    with f._lock:
        m = asyncio.run(f.create_manager(c))
        assert asyncio.run(f.create_manager(c)) is m
        assert asyncio.run(f.cleanup_manager(c.isolation_key))
        assert f._lock._is_owned()
    assert not f._lock._is_owned() and free_for_other_threads(f._lock)


def test_cleanup_manager_keys_and_the_lock_after_errors():
    f = WebSocketManagerFactory()

    class Key(str):
        pass

    c = ctx("key-user")
    m = asyncio.run(f.create_manager(c))
    assert asyncio.run(f.cleanup_manager(None)) is False  # type: ignore[arg-type]
    assert asyncio.run(f.cleanup_manager(42)) is False  # type: ignore[arg-type]
    assert asyncio.run(f.cleanup_manager("\ud800")) is False  # no manager has such a key
    assert free_for_other_threads(f._lock)
    assert asyncio.run(f.cleanup_manager(Key(c.isolation_key))) is True
    assert f._wrappers == {} and not m._is_active


def test_an_observer_that_raises_leaves_the_lock_free():
    class Broken:
        def observe(self, ev):
            raise KeyError("observer")

    f = WebSocketManagerFactory()
    f.add_observer(Broken())
    c = ctx("observed-user")
    with pytest.raises(KeyError):
        asyncio.run(f.create_manager(c))
    assert free_for_other_threads(f._lock) and len(f._registry) == 1
    # The create happened, and its manager is reachable: observers are told last.
    m = f.get_manager(c.isolation_key)
    assert m is not None and f._wrappers == {m.manager_id: m}
    with pytest.raises(KeyError):
        asyncio.run(f.cleanup_manager(c.isolation_key))
    assert free_for_other_threads(f._lock) and len(f._registry) == 0 and f._wrappers == {}


class Observer:
    """Records the kind of every event; raises KeyError for the kinds in `fail_on`."""

    def __init__(self, *fail_on):
        self.fail_on = set(fail_on)
        self.seen = []

    def observe(self, ev):
        self.seen.append(ev.kind)
        if ev.kind in self.fail_on or "all" in self.fail_on:
            raise KeyError(f"observer refused {ev.kind}")


def test_an_observer_that_raises_on_a_create_leaves_the_manager_registered_and_counted():
    async def body():
        f = WebSocketManagerFactory(max_managers_per_user=1)
        broken, other = Observer("created"), Observer()
        f.add_observer(broken)
        f.add_observer(other)
        c = ctx("orphan-user")
        with pytest.raises(KeyError, match="observer refused created"):
            await f.create_manager(c)
        # The manager counts toward the limit and is reachable: by key, in the live
        # view, by a second create for the same key and by cleanup.
        m = f.get_manager(c.isolation_key)
        assert m is not None and m._is_active and m.user_context is c
        assert dict(f._active_managers.items()) == {c.isolation_key: m}
        assert await f.create_manager(c) is m
        assert f.get_factory_stats()["user_distribution"] == {"orphan-user": 1}
        # At the limit: the limit's error, never the observer's.
        broken.fail_on = {"all"}
        with pytest.raises(ManagerLimitError) as e:
            await f.create_manager(ctx("orphan-user"))
        assert "orphan-user" in str(e.value)
        assert isinstance(e.value.__context__, KeyError)
        assert str(e.value.__context__) == "'observer refused limit_exceeded'"
        # Every observer saw every event, the one that raised too.
        assert other.seen == broken.seen == ["created", "reused", "limit_exceeded"]
        with pytest.raises(KeyError, match="observer refused cleaned_up"):
            await f.cleanup_manager(c.isolation_key)
        assert f.get_manager(c.isolation_key) is None and f._wrappers == {} and len(f._registry) == 0
        assert other.seen[-1] == "cleaned_up"
        assert free_for_other_threads(f._lock)

    asyncio.run(body())


def test_an_observer_never_replaces_the_error_of_a_refused_call():
    async def body():
        f = WebSocketManagerFactory()
        m = await f.create_manager(ctx("conn-user"))
        broken = Observer("all")
        f.add_observer(broken)
        # Succeeded: the change stands, the observer's exception is raised.
        mine = conn("conn-user")
        with pytest.raises(KeyError, match="observer refused connection_added"):
            await m.add_connection(mine)
        assert list(m._connections) == [mine.connection_id]
        # Refused: the call's own error, whatever the observer does (an event left
        # pending by a direct registry call reaches the observer, which raises).
        f._registry.create(ctx("conn-user")._ctx)
        with pytest.raises(IsolationViolationError) as e:
            await m.add_connection(conn("other-user"))
        assert list(m._connections) == [mine.connection_id]
        assert isinstance(e.value.__context__, KeyError)
        assert broken.seen[-1] == "created"
        with pytest.raises(KeyError, match="observer refused"):
            await m.cleanup_all_connections()
        assert not m._is_active and len(m._connections) == 0
        with pytest.raises(KeyError, match="observer refused cleaned_up"):
            await f.force_cleanup_user_managers("conn-user")
        assert f.get_factory_stats()["user_distribution"] == {} and f._wrappers == {}
        assert free_for_other_threads(f._lock)

    asyncio.run(body())


def test_stale_cleanup_forgets_the_wrappers_of_the_managers_it_removed():
    async def body():
        f = WebSocketManagerFactory(max_managers_per_user=5)
        old = [await f.create_manager(ctx("stale-user")) for _ in range(3)]
        for m in old:
            await m.add_connection(conn("stale-user"))
            await m.cleanup_all_connections()  # inactive: stale from now on
        # Three of five (60%): the next create cleans the stale managers first.
        new = await f.create_manager(ctx("stale-user"))
        assert list(f._wrappers.values()) == [new]
        assert all(len(m._connections) == 0 and not m._is_active for m in old)
        assert list(f._active_managers.values()) == [new]

    asyncio.run(body())


def test_a_refused_create_leaves_the_wrapper_table_as_it_was():
    async def body():
        f = WebSocketManagerFactory(max_managers_per_user=2)
        ms = [await f.create_manager(ctx("full-user")) for _ in range(2)]
        for m in ms:
            await m.add_connection(conn("full-user"))
        with pytest.raises(RuntimeError):
            await f.create_manager(ctx("full-user"))
        assert sorted(f._wrappers) == sorted(m.manager_id for m in ms)
        assert free_for_other_threads(f._lock)

    asyncio.run(body())


def test_a_dropped_factory_and_its_managers_are_collected():
    """The table, the factory and the wrappers refer to each other; the garbage
    collector sees the table's references and frees them all."""
    f = WebSocketManagerFactory()
    ms = [asyncio.run(f.create_manager(ctx(f"gc-user-{i}"))) for i in range(3)]
    refs = [weakref.ref(f)] + [weakref.ref(m) for m in ms]
    del f, ms
    gc.collect()
    assert [r() for r in refs] == [None] * 4


def test_a_signal_interrupts_a_wait_for_the_lock():
    """Like `RLock.acquire`, a wait in the main thread runs signal handlers (Ctrl-C)."""

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    lock = _native.ReentrantLock()
    held, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        t0 = time.monotonic()
        with pytest.raises(Interrupted):
            lock.acquire()
        assert time.monotonic() - t0 < 5 and not lock._is_owned()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        done.set()
        t.join(5)
    assert free_for_other_threads(lock)
