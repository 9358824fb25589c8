"""Shared helpers for the Python tests (the installed `threadline` package is tested)."""

import asyncio
from typing import Any, Dict, List


class RecordingWebSocket:
    """A real test websocket: keeps what it was sent, can be closed."""

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id
        self.is_connected = True
        self.messages_sent: List[Dict[str, Any]] = []

    async def send_json(self, data: Dict[str, Any]) -> None:
        if not self.is_connected:
            raise ConnectionError("WebSocket connection is closed")
        self.messages_sent.append(data)
        await asyncio.sleep(0.001)

    def close(self) -> None:
        self.is_connected = False

