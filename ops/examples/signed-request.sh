#!/usr/bin/env bash
# Sends one BC1-HMAC-SHA256 signed request to billclear with curl and openssl.
#
#   ops/examples/signed-request.sh KEY_ID SECRET GET  /v1/billers
#   ops/examples/signed-request.sh KEY_ID SECRET POST /v1/payments '{"biller_id":"sh-water",...}' IDEMPOTENCY_KEY
#
# BASE (default http://127.0.0.1:8080) is the service address.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,6p' "$0"; exit 2; }
key_id=$1 secret=$2 method=$3 path=$4 body=${5:-} idem=${6:-}
base=${BASE:-http://127.0.0.1:8080}

ts=$(date +%s)
nonce=$(openssl rand -hex 16)
body_hash=$(printf '%s' "$body" | openssl dgst -sha256 -hex | sed 's/^.* //')
# METHOD \n PATH_AND_QUERY \n ts \n nonce \n hex(SHA-256(body)) \n
sig=$(printf '%s\n%s\n%s\n%s\n%s\n' "$method" "$path" "$ts" "$nonce" "$body_hash" \
      | openssl dgst -sha256 -hmac "$secret" -binary | openssl base64 -A)

args=(-sS -X "$method" "$base$path"
      -H "Authorization: BC1-HMAC-SHA256 key=$key_id,ts=$ts,nonce=$nonce,sig=$sig")
if [ -n "$body" ]; then
    args+=(-H "Content-Type: application/json" --data-binary "$body")
fi
if [ -n "$idem" ]; then
    args+=(-H "Idempotency-Key: $idem")
fi
curl "${args[@]}" -w '\nHTTP %{http_code}\n'
