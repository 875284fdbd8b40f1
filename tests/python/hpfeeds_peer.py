"""Drive the Python hpfeeds 3.1.0 client library against a broker, for Apiary's tests.

Every event is printed to stdout as one JSON object per line (flushed), so the Rust test
that spawned this script can follow along:

    {"event": "connected", "broker": "<OP_INFO name>"}
    {"event": "message", "ident": "...", "channel": "...", "payload": "...", "payload_hex": "..."}
    {"event": "error", "text": "..."}
    {"event": "published", "count": N}
    {"event": "done"} / {"event": "timeout"}

Modes:
    sync-sub     hpfeeds.new(...), subscribe, run() in a thread; exits after --count
                 messages (0: run until --timeout), or after the first broker error when
                 --stop-on-error is given.
    sync-pub     hpfeeds.new(...), publish each --payload; with --wait-error S, then
                 waits up to S seconds for a broker error (client.wait()).
    sync-auth    hpfeeds.new(...) only, then client.wait() for --wait-error seconds
                 (default 5): reports what the broker answers to the AUTH (error text,
                 or nothing).
    async-sub    hpfeeds.asyncio.ClientSession: subscribe, read --count messages.
    async-pub    hpfeeds.asyncio.ClientSession: publish each --payload, then close.

Every mode ends after --timeout seconds at the latest (event "timeout", exit status 3);
otherwise the exit status is 0.
"""

import argparse
import asyncio
import json
import os
import sys
import threading

import hpfeeds
from hpfeeds.asyncio import ClientSession


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def as_text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def emit_message(ident, channel, payload):
    emit(
        event="message",
        ident=as_text(ident),
        channel=as_text(channel),
        payload=as_text(payload),
        payload_hex=bytes(payload).hex(),
    )


def new_client(args):
    kwargs = {"reconnect": False, "timeout": args.timeout}
    if args.certfile:
        kwargs["certfile"] = args.certfile
    return hpfeeds.new(args.host, args.port, args.ident, args.secret, **kwargs)


def sync_sub(args):
    client = new_client(args)
    emit(event="connected", broker=as_text(client.brokername))
    for channel in args.channel:
        client.subscribe(channel)
    seen = {"messages": 0}
    finished = threading.Event()

    def on_message(ident, channel, payload):
        emit_message(ident, channel, payload)
        seen["messages"] += 1
        if args.count and seen["messages"] >= args.count:
            client.stop()
            finished.set()

    def on_error(text):
        emit(event="error", text=as_text(text))
        if args.stop_on_error:
            client.stop()
            finished.set()

    def run():
        try:
            client.run(on_message, on_error)
        except Exception as e:  # Disconnect with reconnect=False ends here.
            emit(event="disconnected", reason=repr(e))
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    finished.wait()
    client.close()
    emit(event="done")


def sync_pub(args):
    client = new_client(args)
    emit(event="connected", broker=as_text(client.brokername))
    for payload in args.payload:
        client.publish(args.channel[0], payload.encode())
    emit(event="published", count=len(args.payload))
    if args.wait_error:
        err = client.wait(timeout=args.wait_error)
        if err is not None:
            emit(event="error", text=as_text(err))
    client.close()
    emit(event="done")


def sync_auth(args):
    client = new_client(args)
    emit(event="connected", broker=as_text(client.brokername))
    err = client.wait(timeout=args.wait_error or 5.0)
    if err is not None:
        emit(event="error", text=as_text(err))
    client.close()
    emit(event="done")


async def async_sub(args):
    async with ClientSession(args.host, args.port, args.ident, args.secret) as sub:
        emit(event="connected", broker="")
        for channel in args.channel:
            sub.subscribe(channel)
        for _ in range(args.count):
            ident, channel, payload = await sub.read()
            emit_message(ident, channel, payload)
    emit(event="done")


async def async_pub(args):
    async with ClientSession(args.host, args.port, args.ident, args.secret) as pub:
        emit(event="connected", broker="")
        for payload in args.payload:
            pub.publish(args.channel[0], payload.encode())
        emit(event="published", count=len(args.payload))
    # Leaving the context closes the transport after its buffer is flushed.
    emit(event="done")


def timed_out():
    emit(event="timeout")
    os._exit(3)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "mode", choices=["sync-sub", "sync-pub", "sync-auth", "async-sub", "async-pub"]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ident", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--channel", action="append", default=[])
    p.add_argument("--payload", action="append", default=[])
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--wait-error", type=float, default=0.0)
    p.add_argument("--stop-on-error", action="store_true")
    p.add_argument("--certfile")
    args = p.parse_args()

    # A hard deadline for every mode: hpfeeds.new() retries a failed connect (TLS
    # verification included) forever, whatever `reconnect` says, and after a broker
    # error ClientSession reconnects forever and may never finish closing.
    watchdog = threading.Timer(args.timeout, timed_out)
    watchdog.daemon = True
    watchdog.start()
    if args.mode == "sync-sub":
        sync_sub(args)
    elif args.mode == "sync-pub":
        sync_pub(args)
    elif args.mode == "sync-auth":
        sync_auth(args)
    else:
        asyncio.run(async_sub(args) if args.mode == "async-sub" else async_pub(args))
    watchdog.cancel()


if __name__ == "__main__":
    main()
