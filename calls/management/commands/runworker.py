"""`manage.py runworker voice-sessions`: Channels' worker, with a start that reopens sessions and a
stop that drains them.

It replaces Channels' own command (``calls`` comes before ``channels`` in INSTALLED_APPS, and the
first app with a command of a name wins). Channels' worker dies on SIGTERM without running any
consumer's cleanup, which would leave every agent's lease held until it expires.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from channels.layers import channel_layers, get_channel_layer
from channels.management.commands import runworker
from channels.routing import get_default_application
from channels.worker import Worker
from django.conf import settings
from django.core.management.base import CommandError

from calls import metrics
from calls.layer import OutageProofLayer
from calls.worker import CHANNEL as VOICE_SESSIONS

log = logging.getLogger("switchboard.runworker")

# How long the consumers get to end their sessions and hand back their leases once told to stop.
DRAIN_TIMEOUT_S = 10.0


async def cancel_until_done(tasks: list[asyncio.Task[Any]]) -> BaseException | None:
    """Cancels the tasks, again and again until they end: a Redis client can swallow the cancellation
    of a blocking read (redis/redis-py#2028) and go on reading. Returns the first task's failure."""
    deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
    while pending := [task for task in tasks if not task.done()]:
        if asyncio.get_running_loop().time() > deadline:
            log.warning("%d listener(s) would not stop", len(pending))
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.2)
    failures = [task.exception() for task in tasks if task.done() and not task.cancelled()]
    return next((failure for failure in failures if failure is not None), None)


def ride_out_outages(layer: Any) -> OutageProofLayer:
    """The layer with receives that wait out a Redis outage, put in the layer's place under every alias
    it has (the consumer instances look their layer up by alias, and read their own channels)."""
    proof = OutageProofLayer(layer)
    for alias, installed in list(channel_layers.backends.items()):
        if installed is layer:
            channel_layers.set(alias, proof)
    return proof


def restore_layer(proof: Any, layer: Any) -> None:
    """Undoes ``ride_out_outages`` (a worker served inside a longer-lived process, as in tests)."""
    for alias, installed in list(channel_layers.backends.items()):
        if installed is proof:
            channel_layers.set(alias, layer)


class Command(runworker.Command):  # type: ignore[misc]  # channels ships no types
    help = "Serves worker channels (voice-sessions) until SIGTERM or SIGINT, then drains and exits 0."

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options.get("verbosity", 1)
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError("You do not have any CHANNEL_LAYERS configured.")
        worker = self.worker_class(
            application=get_default_application(), channels=options["channels"], channel_layer=layer
        )
        # This worker's own metrics (sessions, event lag, writes) on METRICS_PORT; 0 leaves them off.
        port: int = settings.METRICS_PORT
        scrapes = metrics.serve(port, settings.METRICS_HOST) if port else None
        try:
            asyncio.run(self.serve(worker))
        finally:
            if scrapes is not None:
                scrapes.shutdown()

    async def serve(self, worker: Worker) -> None:
        """1. When voice-sessions is served, reconcile at once: the sessions that should run open again.
        2. Listen on the channels, and reap finished consumer instances as Channels' worker does.
        3. On SIGTERM or SIGINT, stop listening, then cancel every consumer instance and wait for it:
           its cleanup ends its sessions and hands back their leases, so another worker takes over.
        4. Return (exit 0); if listening ended otherwise (a listener failed), raise after draining.

        A Redis outage ends nothing: every receive in this process, the listeners' and the consumer
        instances' own, waits until Redis answers again (``calls.layer``), while the sessions go on
        (they need the Voice API and the database, not Redis).
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        layer = worker.channel_layer
        worker.channel_layer = ride_out_outages(layer)
        try:
            if VOICE_SESSIONS in worker.channels:
                # Straight to this process's consumer, not through the layer: with several workers on the
                # channel, a layer message would reach only one of them, and each must start reconciling.
                scope = {"type": "channel", "channel": VOICE_SESSIONS}
                worker.get_or_create_application_instance(VOICE_SESSIONS, scope).put_nowait(
                    {"type": "session.reconcile"}
                )
            # The listeners themselves rather than `worker.handle()`: cancelling that would leave them
            # running, taking messages off the layer for consumers that are draining.
            serving = [
                asyncio.create_task(worker.listener(name), name=f"listen {name}") for name in worker.channels
            ]
            serving.append(asyncio.create_task(worker.application_checker(), name="reap"))
            stopped = asyncio.create_task(stop.wait(), name="stop")
            self.stdout.write(
                f"Serving channels {' '.join(worker.channels)}; SIGTERM or SIGINT drains and stops"
            )
            self.stdout.flush()
            await asyncio.wait([*serving, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            failure = await cancel_until_done(serving)
            await self.drain(worker)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            restore_layer(worker.channel_layer, layer)
            worker.channel_layer = layer
        if not stop.is_set():
            raise failure or CommandError("the worker stopped listening without being asked to")
        self.stdout.write("Worker stopped")

    async def drain(self, worker: Worker) -> None:
        """Cancels every consumer instance once (its cleanup must not be cut short) and waits for it."""
        instances = [details["future"] for details in worker.application_instances.values()]
        for future in instances:
            future.cancel()
        done, pending = (
            await asyncio.wait(instances, timeout=DRAIN_TIMEOUT_S) if instances else (set(), set())
        )
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                log.error("a consumer failed while draining", exc_info=future.exception())
        if pending:
            log.warning(
                "%d consumer(s) did not drain within %.0f s; leases expire on their own",
                len(pending),
                DRAIN_TIMEOUT_S,
            )
        worker.application_instances.clear()
