"""The pieces of ``alpaca-md run`` that are not platform steps.

``stats`` (a pure model of the stream), ``table``/``plain`` (two views of it), ``report`` (the
``--report`` JSON), ``steps`` (spinner/✓✗ step lines with timings), ``heal`` (re-handshake after
a WebSocketManager reconnect), ``signals`` (Ctrl+C/SIGTERM -> one cleanup) and ``embedded`` (the
embedded platform as a child process). Only :mod:`alpaca_cli.commands.run` wires them together.
"""
