"""Minimal raw HTTP client: full control over method, headers and body bytes."""
import http.client
import json
import socket
import uuid


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers  # dict, lower-cased names
        self.raw = raw
        self.json = None
        self.is_json = False
        if raw:
            try:
                self.json = json.loads(raw)
                self.is_json = True
            except (ValueError, UnicodeDecodeError):
                pass

    @property
    def media_type(self):
        ct = self.headers.get("content-type", "")
        return ct.split(";")[0].strip().lower()

    def body_for_compare(self):
        if self.is_json:
            return self.json
        if not self.raw:
            return None
        return {"<non-json body>": self.raw.decode("utf-8", "replace")}


def encode_multipart(fields):
    """fields: dict name -> str | list[str] | {"filename":..,"content":..,"type":..}."""
    boundary = "----compat" + uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            out.append(f"--{boundary}\r\n".encode())
            if isinstance(v, dict):
                out.append(f'Content-Disposition: form-data; name="{name}"; filename="{v["filename"]}"\r\n'.encode())
                out.append(f'Content-Type: {v.get("type", "application/octet-stream")}\r\n\r\n'.encode())
                c = v["content"]
                out.append(c.encode() if isinstance(c, str) else c)
            else:
                out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
                out.append(str(v).encode())
            out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def send(host, port, method, target, headers=None, body=None, timeout=60):
    """Send one request on a fresh connection and return a Response.

    Large bodies are streamed in chunks; if the server answers early and closes
    (e.g. 413), the send error is swallowed and the response is still read.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = dict(headers or {})
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        if body is not None:
            headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Connection", "close")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            view = memoryview(body)
            step = 256 * 1024
            try:
                for i in range(0, len(body), step):
                    conn.sock.sendall(view[i:i + step])
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
        try:
            r = conn.getresponse()
            raw = r.read()
        except (ConnectionResetError, http.client.RemoteDisconnected) as e:
            return Response(0, {}, f"<connection error: {type(e).__name__}>".encode())
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, raw)
    finally:
        conn.close()
