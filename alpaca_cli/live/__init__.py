"""The pieces of ``alpaca-md run`` that are not platform steps.

``stats`` (a pure model of the stream), ``table``/``plain`` (two views of it), ``report`` (the
``--report`` JSON), ``steps`` (spinner/✓✗ step lines with timings), ``loop`` (the stream, with
the re-handshake after a WebSocketManager reconnect), ``signals`` (Ctrl+C/SIGTERM -> one
cleanup) and ``embedded`` (the embedded platform as a child process). :mod:`~alpaca_cli.live.flow`
wires them together with the subcommands' step functions; :mod:`alpaca_cli.commands.run` is its
Typer wrapper.
"""
