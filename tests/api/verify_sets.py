"""Verifies Security Event Tokens with PyJWT (PyPI `pyjwt[crypto]`), a
standard JOSE library, not the server's code: reads
{"jwks": {...}, "issuer": ..., "audience": ... or null, "sets": ["..."]}
on stdin and prints one line of JSON: for each SET, its header and claims
when it verifies (ES256 only, the key picked by the header's `kid` from the
JWK Set, `iss` and `aud` checked), else {"error": "..."}."""
import json
import sys

import jwt

request = json.load(sys.stdin)
keys = jwt.PyJWKSet.from_dict(request["jwks"])
by_kid = {key.key_id: key for key in keys.keys}
results = []
for token in request["sets"]:
    try:
        header = jwt.get_unverified_header(token)
        key = by_kid[header["kid"]]
        options = {"require": ["iss", "iat", "jti"], "verify_aud": request["audience"] is not None}
        claims = jwt.decode(
            token,
            key=key,
            algorithms=["ES256"],
            issuer=request["issuer"],
            audience=request["audience"],
            options=options,
        )
        results.append({"header": header, "claims": claims})
    except (jwt.PyJWTError, KeyError) as error:
        results.append({"error": f"{type(error).__name__}: {error}"})
print(json.dumps(results))
