"""Schemathesis hooks for billclear's contract run (ops/contract.sh).

Requests are signed as a payment app signs them: schemathesis sends the
placeholder `Authorization: BILLCLEAR-AUTH`, and just before a request
leaves (its method, path, query and body bytes final) the placeholder is
replaced by the credential the route takes:

* /ops/v1/...                         Bearer <operator token>
* /v1/staff, /v1/recon, /v1/breaks    Bearer <staff token>
* /v1/settlements                     BC1-HMAC-SHA256 with a biller's key
* every other /v1 route               BC1-HMAC-SHA256 with the channel's key

A request without the placeholder (schemathesis' own ignored_auth and
missing-header checks) leaves unsigned, and must be refused."""
import base64
import hashlib
import hmac
import os
import time
import uuid
from urllib.parse import urlsplit

import requests

PLACEHOLDER = "BILLCLEAR-AUTH"
KEY_ID = os.environ["BILLCLEAR_CONTRACT_KEY_ID"]
SECRET = os.environ["BILLCLEAR_CONTRACT_SECRET"].encode()
BILLER_KEY_ID = os.environ["BILLCLEAR_CONTRACT_BILLER_KEY_ID"]
BILLER_SECRET = os.environ["BILLCLEAR_CONTRACT_BILLER_SECRET"].encode()
STAFF_TOKEN = os.environ["BILLCLEAR_CONTRACT_STAFF_TOKEN"]
OPS_TOKEN = os.environ["BILLCLEAR_CONTRACT_OPS_TOKEN"]
STAFF_PREFIXES = ("/v1/staff", "/v1/recon", "/v1/breaks")

_send = requests.Session.send


def _signature(request, path_and_query, key_id, secret):
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    ts = int(time.time())
    nonce = uuid.uuid4().hex
    digest = hashlib.sha256(body).hexdigest()
    to_sign = f"{request.method}\n{path_and_query}\n{ts}\n{nonce}\n{digest}\n"
    sig = hmac.new(secret, to_sign.encode(), hashlib.sha256).digest()
    return (
        f"BC1-HMAC-SHA256 key={key_id},ts={ts},nonce={nonce},"
        f"sig={base64.b64encode(sig).decode()}"
    )


def _authorize(request):
    parts = urlsplit(request.url)
    path_and_query = parts.path + ("?" + parts.query if parts.query else "")
    if parts.path.startswith("/ops/"):
        value = f"Bearer {OPS_TOKEN}"
    elif parts.path.startswith(STAFF_PREFIXES):
        value = f"Bearer {STAFF_TOKEN}"
    elif parts.path.startswith("/v1/settlements"):
        value = _signature(request, path_and_query, BILLER_KEY_ID, BILLER_SECRET)
    else:
        value = _signature(request, path_and_query, KEY_ID, SECRET)
    request.headers["Authorization"] = value


def send(self, request, **kwargs):
    if request.headers.get("Authorization") == PLACEHOLDER:
        _authorize(request)
    return _send(self, request, **kwargs)


requests.Session.send = send
