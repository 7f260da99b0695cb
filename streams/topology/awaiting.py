"""What each task of a running worker is waiting on, logged when the process gets SIGUSR1
(`kill -USR1 <pid>`; docs/operations/runbooks.md). For a worker that is up and ready and does nothing:
the stall this was first needed for showed as healthy probes and seeks in the log, and only the tasks'
await chains told a busy agent from a stuck one.

The chains come from the main loop's tasks and from the loop of Faust's consumer thread
(faust_compat.consumer_thread_loop, pinned by tests/stream/test_faust_compat.py), and, since Faust runs
an agent's coroutine behind a wrapper whose awaits a task does not show, from the coroutines of this
project's own code found in memory."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sysconfig
import types
from pathlib import Path

from streams.topology import faust_compat

log = logging.getLogger("soc.tasks")
OWN_CODE = str(Path(__file__).resolve().parents[1])  # streams/
STDLIB = sysconfig.get_paths()["stdlib"]


def await_chain(awaitable) -> list[str]:
    """`file:line function` of each coroutine or generator down the chain of what `awaitable` awaits."""
    chain = []
    while awaitable is not None:
        frame = next((f for name in ("cr_frame", "gi_frame", "ag_frame")
                      if (f := getattr(awaitable, name, None)) is not None), None)
        if frame is None:
            chain.append(type(awaitable).__name__)  # a future, or Faust's wrapper: the chain ends here
            break
        chain.append(f"{_short(frame.f_code.co_filename)}:{frame.f_lineno} {frame.f_code.co_name}")
        awaitable = next((a for name in ("cr_await", "gi_yieldfrom", "ag_await")
                          if (a := getattr(awaitable, name, None)) is not None), None)
    return chain


def awaiting(app) -> dict[str, list[list[str]]]:
    """The chains: of the main loop's tasks, the consumer thread's, and the project's own coroutines."""
    own = [o for o in gc.get_objects() if isinstance(o, (types.CoroutineType, types.AsyncGeneratorType))
           and (f := getattr(o, "cr_frame", None) or getattr(o, "ag_frame", None)) is not None
           and f.f_code.co_filename.startswith(OWN_CODE) and f.f_code.co_name != "awaiting"]
    inner = {id(getattr(o, "cr_await", None) or getattr(o, "ag_await", None)) for o in own}
    return {"tasks": [await_chain(t.get_coro()) for t in asyncio.all_tasks()],
            "consumer_thread": [await_chain(t.get_coro()) for t in asyncio.all_tasks(faust_compat.consumer_thread_loop(app))],
            "own": [await_chain(o) for o in own if id(o) not in inner]}  # each chain once, from its outermost


def log_on_sigusr1(app):
    """An app task: from the worker's start, SIGUSR1 logs `awaiting(app)` as one record."""
    async def log_what_tasks_await() -> None:
        def dump() -> None:
            log.warning("what each task awaits (SIGUSR1)", extra=awaiting(app))

        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)

    return log_what_tasks_await


def _short(filename: str) -> str:
    return filename.split("site-packages/")[-1].removeprefix(OWN_CODE + "/").removeprefix(STDLIB + "/")
