"""alpaca-md: bring up a live Alpaca crypto market-data stream through the virtufin platform.

Layers (imports only ever point downwards):

* ``alpaca_cli.commands``  -- thin Typer commands, one module per subcommand.
* ``alpaca_cli.platform``  -- clients for a virtufin platform: gateway (httpx), pub/sub (dapr).
* ``alpaca_cli.alpaca``    -- sans-I/O Alpaca protocol core: codec, messages, L2 book.
* ``alpaca_cli.devstack``  -- the embedded platform and Alpaca stream server; only ``dev``
  commands and ``run --embedded`` start it, and the CLI code paths never import it otherwise.
"""

from __future__ import annotations

__version__ = "0.1.0"
