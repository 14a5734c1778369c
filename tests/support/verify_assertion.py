"""An upstream's check of gatehouse's identity assertion, with PyJWT (an independent JOSE
implementation): the JWKS gatehouse publishes, the X-Gatehouse-Assertion value, and the
audience and issuer the upstream expects, as JSON on stdin. Prints {"claims": {...}} when the
assertion verifies, {"error": "..."} when it does not.
"""

import json
import sys

import jwt

request = json.load(sys.stdin)
try:
    header = jwt.get_unverified_header(request["token"])
    keys = jwt.PyJWKSet.from_dict(request["jwks"])
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims = jwt.decode(
        request["token"],
        key.key,
        algorithms=[header["alg"]],
        audience=request["audience"],
        issuer=request["issuer"],
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    print(json.dumps({"claims": claims}))
except Exception as e:  # every failure is an answer: the test reads it
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
