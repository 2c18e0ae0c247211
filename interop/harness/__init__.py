"""Client-independent pieces of the interop harness.

`server` starts and stops one server process (Jetway or the reference nats-server);
`raw` speaks the NATS text protocol over a plain socket, for checks no client library
lets through (oversized payloads, unknown operations, pipelining).
"""
