from __future__ import annotations

from alpaca_cli.main import main

main()
