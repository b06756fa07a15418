"""A fake indexer on 127.0.0.1: the host a Prowlarr download link may redirect to, recording what it was sent
(to prove a credential never reaches it), with redirect chains, a loop, a magnet and a refusal."""
from __future__ import annotations

from app.integrations.torrentfile import bencode, magnet_uri

from fakes.http import QuietHandler, serve

MAGNET_HASH = "0123456789abcdef0123456789abcdef01234567"  # the info hash of the magnet /magnet redirects to
SMALL_TORRENT = bencode({"info": {"name": "Book", "piece length": 262144, "pieces": b"p" * 20, "length": 5}})


class FakeIndexer:
    """An 'indexer' on its own port that records what it was sent.

    /torrent serves .torrent bytes; /hops/N redirects N more times before serving them; /loop redirects
    to itself; /magnet redirects to a magnet; /refuse answers 401.
    """

    def __init__(self, torrent: bytes = SMALL_TORRENT):
        self.torrent, self.requests = torrent, []
        indexer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                indexer.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                path = self.path.split("?")[0]
                if path == "/loop":
                    return self._send(302, b"", "text/plain", {"Location": "/loop"})
                if path == "/magnet":
                    return self._send(301, b"", "text/plain", {"Location": magnet_uri(MAGNET_HASH, "Book")})
                if path == "/refuse":
                    return self._send(401, b"", "text/plain")
                if path.startswith("/hops/") and int(path.rsplit("/", 1)[1]) > 0:
                    left = int(path.rsplit("/", 1)[1]) - 1
                    return self._send(301, b"", "text/plain", {"Location": f"{indexer.url}/hops/{left}"})
                self._send(200, indexer.torrent, "application/x-bittorrent")

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
