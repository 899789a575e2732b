"""Clients for a virtufin platform: the gateway over HTTP, pub/sub through a Dapr sidecar.

They cannot tell a real platform from the embedded one, and must never import devstack.
"""
