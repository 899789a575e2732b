"""The embedded platform: stand-ins for the gateway, WorkManager, WebSocketManager, controller
worker and Dapr sidecar, plus an Alpaca stream server, all speaking the real wire protocols."""
