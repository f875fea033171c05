"""A relying party built on Authlib (PyPI), driven by Tessera's tests
(crates/tessera/tests/op_peers.rs): the code flow with PKCE against Tessera's OpenID Provider,
with the id_token verified by Authlib against the JWKS (signature, iss, aud, exp, nonce,
at_hash).

    python op_client.py '{"issuer": "...", "client_id": "...", "client_secret": "...",
                          "redirect_uri": "..."}'

Protocol on stdio, one JSON object per line: prints {"authorize": URL}; reads {"callback": URL};
prints {"result": {...}} or {"error": "..."}.
"""

import json
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


def main():
    cfg = json.loads(sys.argv[1])
    meta = requests.get(cfg["issuer"] + "/.well-known/openid-configuration", timeout=10).json()
    if meta["issuer"] != cfg["issuer"]:
        raise ValueError(f"issuer mismatch: {meta['issuer']}")
    session = OAuth2Session(
        cfg["client_id"],
        cfg["client_secret"],
        scope="openid email profile",
        redirect_uri=cfg["redirect_uri"],
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(64)
    nonce = generate_token(24)
    uri, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    print(json.dumps({"authorize": uri}), flush=True)
    callback = json.loads(sys.stdin.readline())["callback"]
    token = session.fetch_token(
        meta["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "values": [meta["issuer"]]}},
        claims_params={
            "nonce": nonce,
            "client_id": cfg["client_id"],
            "access_token": token["access_token"],
        },
    )
    claims.validate()
    userinfo = session.get(meta["userinfo_endpoint"], timeout=10).json()
    print(
        json.dumps(
            {
                "result": {
                    "sub": claims["sub"],
                    "aud": claims["aud"],
                    "email": claims.get("email"),
                    "expires_in": token.get("expires_in"),
                    "userinfo": userinfo,
                }
            }
        ),
        flush=True,
    )


try:
    main()
except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
    sys.exit(1)
