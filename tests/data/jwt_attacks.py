#!/usr/bin/python3
"""Send forged and broken JWTs, made by PyJWT (an independent JWT
implementation), to a gateway route that needs a token, and check that each
one is refused with 401 and a WWW-Authenticate challenge, and that the real
thing passes.

usage: jwt_attacks.py URL
The gateway's auth config (tests/test_gateway.c): HS256 key kid "dev" with
the dev secret and issuer keel-dev; RS256 key kid "rsa" with
tests/data/jwt/rsa_public.pem. Prints "attacks refused: N" and exits 0 when
every check held, else prints what failed and exits 1.
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

import jwt

URL = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "keel-dev-secret-not-for-production"
RSA_PRIVATE = open(os.path.join(HERE, "jwt", "rsa_private.pem")).read()
RSA_PUBLIC = open(os.path.join(HERE, "jwt", "rsa_public.pem")).read()
NOW = int(time.time())


def claims(**extra):
    c = {"sub": "mallory", "iss": "keel-dev", "exp": NOW + 600,
         "scope": "echo:read"}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs(payload, key=SECRET, kid="dev", alg="HS256"):
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def unsigned(payload, kid="dev"):
    head = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(payload).encode())
    return head + "." + body + "."


def confused(payload):
    # RS256 -> HS256 confusion: HMAC keyed with the RSA public key, naming
    # the RSA key's kid. A verifier that lets the token pick the algorithm
    # accepts it.
    import hmac
    import hashlib
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(RSA_PUBLIC.encode(), (head + "." + body).encode(),
                   hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def tampered():
    token = hs(claims())
    head, body, sig = token.split(".")
    forged = b64(json.dumps(claims(sub="admin", roles=["admin"])).encode())
    return head + "." + forged + "." + sig


def status(token, scheme="Bearer"):
    req = urllib.request.Request(URL)
    if token is not None:
        req.add_header("Authorization", scheme + " " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("WWW-Authenticate")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate")


ATTACKS = [
    ("alg none", unsigned(claims())),
    ("alg none without kid", unsigned(claims(), kid=None)),
    ("RS256 key used as HS256 secret", confused(claims())),
    ("wrong secret", hs(claims(), key="not-the-secret-at-all-0123456789")),
    ("tampered claims", tampered()),
    ("expired", hs(claims(exp=NOW - 3600))),
    ("not yet valid", hs(claims(nbf=NOW + 3600))),
    ("wrong issuer", hs(claims(iss="someone-else"))),
    ("no exp", hs(claims(exp=None))),
    ("unknown kid", hs(claims(), kid="nope")),
    ("HS512", hs(claims(), alg="HS512")),
    ("RS256 signed by another key", None),
    ("garbage", "not.a.token"),
    ("empty bearer", ""),
]


def main():
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives import serialization
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    failures = []
    refused = 0
    for name, token in ATTACKS:
        if name == "RS256 signed by another key":
            token = jwt.encode(claims(), other_pem, algorithm="RS256",
                               headers={"kid": "rsa"})
        code, challenge = status(token)
        if code != 401 or not challenge or "Bearer" not in challenge:
            failures.append("%s: got %s (%s)" % (name, code, challenge))
        else:
            refused += 1
    # Basic auth is not a bearer token.
    code, challenge = status("dXNlcjpwYXNz", scheme="Basic")
    if code != 401:
        failures.append("basic: got %s" % code)
    # The real things pass: HS256 with the dev key, RS256 with the RSA key.
    for name, token in (
            ("valid HS256", hs(claims())),
            ("valid RS256", jwt.encode(claims(), RSA_PRIVATE,
                                       algorithm="RS256",
                                       headers={"kid": "rsa"}))):
        code, _ = status(token)
        if code != 200:
            failures.append("%s: got %s" % (name, code))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("attacks refused: %d" % refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
