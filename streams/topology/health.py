"""Honest health: a crashed agent fails /healthz and ends the process; a failing timer is logged,
counted and tried again at its next tick, and never takes the app down."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

log = logging.getLogger("soc.health")

# Exit code of a worker whose agent crashed (EX_SOFTWARE): compose and k8s restart it.
CRASH_EXIT_CODE = 70
# Long enough for a liveness probe or a person to see /healthz fail, short enough to restart soon.
EXIT_AFTER_S = 2.0


class Health:
    def __init__(self, exit_process: Callable[[int], None] = os._exit):
        self.failure: str | None = None
        self._exit = exit_process

    @property
    def ok(self) -> bool:
        return self.failure is None

    def agent_crashed(self, name: str, exc: BaseException) -> None:
        """Faust would restart the actor and carry on quietly; a restarted process replays from the
        committed offsets instead, which the pipeline is built for."""
        self.failure = f"agent {name} crashed: {type(exc).__name__}: {exc}"
        log.critical("agent crashed: exiting", extra={"agent": name, "error": f"{type(exc).__name__}: {exc}"},
                     exc_info=exc)
        asyncio.get_running_loop().call_later(EXIT_AFTER_S, self._exit, CRASH_EXIT_CODE)

    async def _reported(self, name: str, work: Awaitable[None]) -> None:
        """Await work that runs for the worker's life; its crash fails health, and is raised on."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.agent_crashed(name, exc)
            raise

    def reporting_agent(self, app):
        """`agent(channel, name)(fn)` registers `fn` as a Faust agent whose crash fails health."""
        def agent(channel, name: str):
            def register(fn):
                async def run(stream):
                    await self._reported(name, fn(stream))

                run.__name__ = run.__qualname__ = name
                run.__doc__ = fn.__doc__
                return app.agent(channel, name=name)(run)
            return register
        return agent

    def reporting_task(self, name: str, run: Callable[[], Awaitable[None]]):
        """An app task (it runs for the worker's life) whose crash fails health like an agent's."""
        async def task() -> None:
            await self._reported(name, run())

        task.__name__ = task.__qualname__ = name.replace(" ", "_").replace(".", "_")
        return task

    def guarded_timer(self, app, metrics):
        """`timer(interval, name)(fn)` registers `fn` as a Faust timer whose exceptions are logged
        and counted in soc_timer_errors_total{timer} instead of crashing the app."""
        def timer(interval: float, name: str):
            def register(fn: Callable[[], Awaitable[None]]):
                metrics.timer_errors.labels(name)

                async def tick() -> None:
                    try:
                        await fn()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        metrics.timer_errors.labels(name).inc()
                        log.warning("timer failed; it runs again at its next tick",
                                    extra={"timer": name, "error": f"{type(exc).__name__}: {exc}"}, exc_info=True)

                tick.__name__ = tick.__qualname__ = name
                return app.timer(interval, name=name)(tick)
            return register
        return timer
