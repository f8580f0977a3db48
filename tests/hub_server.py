"""A loopback stand-in for the Hugging Face Hub's HTTP API: the calls ``create_repo`` and ``upload_folder`` make.

It records every request (method, path, Authorization header, JSON body) and the files committed (path ->
bytes), checks README.md's metadata (validate-yaml) as the hub does where a card could fail it, answers
create-repo with the repository URL, preupload with "regular" for every file (so the content
travels base64 in the commit, no LFS or Xet storage), and commit with a commit id. Any other request is
recorded and answered 404, so a test sees a call it did not expect.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

USER = "rgsd-tester"


class FakeHub:
    """``with FakeHub() as hub:`` point huggingface_hub at ``hub.url``; read ``hub.calls`` and ``hub.files``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, bytes]] = {}  # repo id -> path -> content
        self.repos: dict[str, dict[str, Any]] = {}  # repo id -> create payload
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                hub.calls.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
                self._reply(404, {"error": "not in the fake hub"})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = {"method": "POST", "path": self.path, "auth": self.headers.get("Authorization")}
                hub.calls.append(call)
                parts = self.path.split("?")[0].strip("/").split("/")
                if self.path.startswith("/api/repos/create"):
                    body = call["json"] = json.loads(raw)
                    repo = f"{body.get('organization') or USER}/{body['name']}"
                    hub.repos[repo] = body
                    return self._reply(200, {"url": f"http://{self.headers['Host']}/{repo}", "name": repo})
                if self.path.startswith("/api/validate-yaml"):  # upload_folder checks README.md's metadata
                    body = call["json"] = json.loads(raw)
                    errors = hub.card_errors(body["content"])
                    return self._reply(400 if errors else 200, {"errors": errors, "warnings": []})
                if len(parts) >= 5 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    body = call["json"] = json.loads(raw)
                    files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                             for f in body["files"]]
                    return self._reply(200, {"files": files, "commitOid": "0" * 40})
                if len(parts) >= 5 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo = f"{parts[2]}/{parts[3]}"
                    lines = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
                    call["ndjson"] = lines
                    for line in lines:
                        if line["key"] == "file":
                            value = line["value"]
                            hub.files.setdefault(repo, {})[value["path"]] = base64.b64decode(value["content"])
                    return self._reply(200, {"commitUrl": f"http://{self.headers['Host']}/{repo}/commit/1",
                                             "commitOid": "1" * 40, "success": True})
                self._reply(404, {"error": "not in the fake hub"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def card_errors(content: str) -> list[dict[str, str]]:
        """The hub's metadata rules a card could break here: YAML front matter, base_model a repo id."""
        try:
            meta = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else {}
        except (IndexError, yaml.YAMLError) as err:
            return [{"message": f"invalid YAML: {err}"}]
        base = (meta or {}).get("base_model")
        if base is not None and not re.match(r"^[\w.-]+/[\w.-]+$", str(base)):
            return [{"message": f'"base_model" must be a hub model id, got {base!r}'}]
        return []

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
