"""Sans-I/O Alpaca crypto stream core: codec, typed messages, L2 order book, error table."""
