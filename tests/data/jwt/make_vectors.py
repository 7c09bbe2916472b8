#!/usr/bin/python3
"""make_vectors.py - regenerate the JWT test vectors of tests/test_jwt.c.

Tokens come from an independent implementation (PyJWT + cryptography), so the
C verifier in actors/gateway/jwt.c is checked against someone else's idea of
JWS, not its own. Hostile tokens PyJWT refuses to make (alg confusion, alg
none with a kid, duplicate keys, bad base64...) are assembled by hand here.

    /usr/bin/python3 tests/data/jwt/make_vectors.py     # from the repo root

Writes, next to this script:
    rsa_private.pem, ec_private.pem   test keys, generated once: kept if present
    rsa_public.pem, ec_public.pem     their public halves (what keel loads)
    rsa_public_pkcs1.pem              the RSA one as "BEGIN RSA PUBLIC KEY"
    vectors.json                      {"now", "leeway", "secret", "vectors": [
                                        {"name", "token", "expect", "sub",
                                         "scopes", "roles", "note"}]}

"expect" is the stable reason name keel_auth_reason_name() returns ("OK",
"EXPIRED", ...). The verifier under test is configured as in test_jwt.c:
    kid "hs"  HS256, secret SECRET, requires iss "keel-test"
    kid "rsa" RS256, rsa_public.pem, requires aud "api"
    kid "ec"  ES256, ec_public.pem
    leeway 30 s, checked at NOW.

Deterministic where the algorithms allow it: HS256 and RS256 (PKCS#1 v1.5)
signatures depend only on key and input; ES256 signatures are randomised, so
those tokens change on each run (and all still verify).
"""
import base64
import hashlib
import hmac
import json
import os

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import \
    encode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1700000000            # 2023-11-14T22:13:20Z, the test's "now"
LEEWAY = 30
FUTURE = 4102444800         # 2100-01-01
PAST = 1600000000           # 2020-09-13
SECRET = "keel-test-secret-0123456789abcdef"
ISS = "keel-test"
AUD = "api"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header, claims):
    """Encode a header and claims (dicts, or raw text) as the signing input."""
    def seg(part):
        if isinstance(part, (dict, list)):
            part = json.dumps(part, separators=(",", ":"))
        return b64(part)
    return seg(header) + "." + seg(claims)


def hs_sign(signing_input, secret=SECRET):
    if isinstance(secret, str):
        secret = secret.encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def load_or_make(path, make):
    if not os.path.exists(path):
        key = make()
        with open(path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def write_public(key, path):
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(path, "wb") as f:
        f.write(pem)
    return pem


def main():
    rsa_key = load_or_make(os.path.join(HERE, "rsa_private.pem"),
                           lambda: rsa.generate_private_key(65537, 2048))
    ec_key = load_or_make(os.path.join(HERE, "ec_private.pem"),
                          lambda: ec.generate_private_key(ec.SECP256R1()))
    rsa_pem = write_public(rsa_key, os.path.join(HERE, "rsa_public.pem"))
    with open(os.path.join(HERE, "rsa_public_pkcs1.pem"), "wb") as f:
        f.write(rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1))
    write_public(ec_key, os.path.join(HERE, "ec_public.pem"))

    vectors = []

    def add(name, token, expect, sub=None, scopes=(), roles=(), note=""):
        entry = {"name": name, "token": token, "expect": expect, "note": note}
        if expect == "OK":
            entry.update(sub=sub, scopes=list(scopes), roles=list(roles))
        vectors.append(entry)

    def hs(claims, kid="hs", **headers):
        if kid:
            headers["kid"] = kid
        return jwt.encode(claims, SECRET, algorithm="HS256", headers=headers)

    def rs(claims, kid="rsa"):
        return jwt.encode(claims, rsa_key, algorithm="RS256",
                          headers={"kid": kid} if kid else None)

    def es(claims, kid="ec"):
        return jwt.encode(claims, ec_key, algorithm="ES256",
                          headers={"kid": kid} if kid else None)

    hs_claims = {"sub": "alice", "iss": ISS, "exp": FUTURE,
                 "scope": "orders:read orders:write", "roles": ["admin"]}
    rs_claims = {"sub": "bob", "aud": AUD, "exp": FUTURE,
                 "scp": ["orders:read"], "roles": ["ops", "billing"]}
    es_claims = {"sub": "carol", "exp": FUTURE, "iat": NOW - 10}

    # --- accepted ---------------------------------------------------------
    hs_ok = hs(hs_claims)
    rs_ok = rs(rs_claims)
    es_ok = es(es_claims)
    add("hs256_ok", hs_ok, "OK", "alice", ["orders:read", "orders:write"],
        ["admin"])
    add("hs256_no_kid", hs(hs_claims, kid=None), "OK", "alice",
        ["orders:read", "orders:write"], ["admin"],
        "no kid: tried against the HS256 keys")
    add("rs256_ok", rs_ok, "OK", "bob", ["orders:read"], ["ops", "billing"])
    add("rs256_no_kid", rs(rs_claims, kid=None), "OK", "bob",
        ["orders:read"], ["ops", "billing"])
    add("rs256_aud_array", rs(dict(rs_claims, aud=["other", AUD])), "OK",
        "bob", ["orders:read"], ["ops", "billing"])
    add("es256_ok", es_ok, "OK", "carol")
    add("es256_no_kid", es(es_claims, kid=None), "OK", "carol")
    add("scp_string", es(dict(es_claims, scp="a b")), "OK", "carol",
        ["a", "b"], note="scp as a space-separated string (Azure AD style)")
    add("typ_at_jwt", hs(hs_claims, typ="at+jwt"), "OK", "alice",
        ["orders:read", "orders:write"], ["admin"], "typ is not checked")

    # --- time: NOW with 30 s leeway ----------------------------------------
    add("hs256_expired", hs(dict(hs_claims, exp=PAST)), "EXPIRED")
    add("rs256_expired", rs(dict(rs_claims, exp=PAST)), "EXPIRED")
    add("es256_expired", es(dict(es_claims, exp=PAST)), "EXPIRED")
    add("exp_now_minus_leeway", hs(dict(hs_claims, exp=NOW - LEEWAY)),
        "EXPIRED", note="expired when now >= exp + leeway")
    add("exp_now_minus_leeway_plus_1", hs(dict(hs_claims, exp=NOW - LEEWAY + 1)),
        "OK", "alice", ["orders:read", "orders:write"], ["admin"])
    add("nbf_now_plus_leeway", hs(dict(hs_claims, nbf=NOW + LEEWAY)), "OK",
        "alice", ["orders:read", "orders:write"], ["admin"],
        "valid from nbf - leeway")
    add("nbf_now_plus_leeway_plus_1", hs(dict(hs_claims, nbf=NOW + LEEWAY + 1)),
        "NOT_YET_VALID")
    add("exp_fraction", hs(dict(hs_claims, exp=NOW - LEEWAY + 0.5)), "OK",
        "alice", ["orders:read", "orders:write"], ["admin"],
        "NumericDate may be fractional: now < exp + leeway")
    add("exp_missing", hs({k: v for k, v in hs_claims.items() if k != "exp"}),
        "MISSING_EXP")
    add("exp_string", hs_sign(compact({"alg": "HS256", "kid": "hs"},
                                      dict(hs_claims, exp=str(FUTURE)))),
        "BAD_CLAIM", note="exp must be a number")
    add("nbf_bool", hs_sign(compact({"alg": "HS256", "kid": "hs"},
                                    dict(hs_claims, nbf=True))), "BAD_CLAIM")

    # --- issuer, audience, subject, scopes, roles --------------------------
    add("wrong_iss", hs(dict(hs_claims, iss="evil")), "WRONG_ISSUER")
    add("missing_iss", hs({k: v for k, v in hs_claims.items() if k != "iss"}),
        "WRONG_ISSUER", note="the hs key requires iss")
    add("wrong_aud", rs(dict(rs_claims, aud="other")), "WRONG_AUDIENCE")
    add("wrong_aud_array", rs(dict(rs_claims, aud=["x", "y"])),
        "WRONG_AUDIENCE")
    add("missing_aud", rs({k: v for k, v in rs_claims.items() if k != "aud"}),
        "WRONG_AUDIENCE", note="the rsa key requires aud")
    add("missing_sub", es({k: v for k, v in es_claims.items() if k != "sub"}),
        "MISSING_SUB")
    add("sub_number", hs_sign(compact({"alg": "HS256", "kid": "hs"},
                                      dict(hs_claims, sub=42))), "BAD_CLAIM")
    add("scope_number", hs_sign(compact({"alg": "HS256", "kid": "hs"},
                                        dict(hs_claims, scope=7))), "BAD_CLAIM")
    add("roles_mixed", hs_sign(compact({"alg": "HS256", "kid": "hs"},
                                       dict(hs_claims, roles=["a", 1]))),
        "BAD_CLAIM")

    # --- algorithms and keys -----------------------------------------------
    add("alg_none", jwt.encode(hs_claims, None, algorithm="none"), "ALG_NONE")
    add("alg_none_kid", compact({"alg": "none", "kid": "hs"}, hs_claims) + ".",
        "ALG_NONE")
    add("alg_none_signed", hs_sign(compact({"alg": "none", "kid": "hs"},
                                           hs_claims)), "ALG_NONE")
    add("alg_missing", hs_sign(compact({"typ": "JWT", "kid": "hs"},
                                       hs_claims)), "ALG_MISSING")
    add("alg_number", hs_sign(compact({"alg": 256, "kid": "hs"}, hs_claims)),
        "ALG_UNSUPPORTED")
    add("alg_hs512", jwt.encode(hs_claims, SECRET, algorithm="HS512",
                                headers={"kid": "hs"}), "ALG_UNSUPPORTED")
    add("alg_lowercase", hs_sign(compact({"alg": "hs256", "kid": "hs"},
                                         hs_claims)), "ALG_UNSUPPORTED",
        "alg names are case-sensitive")
    add("confusion_rs_to_hs", hs_sign(compact({"alg": "HS256", "kid": "rsa"},
                                              rs_claims), rsa_pem),
        "ALG_MISMATCH", note="HS256 signed with the RSA public PEM as secret")
    add("confusion_rs_to_hs_no_kid",
        hs_sign(compact({"alg": "HS256"}, rs_claims), rsa_pem),
        "BAD_SIGNATURE", note="tried against the HS256 key only")
    add("rs256_with_ec_kid", rs(rs_claims, kid="ec"), "ALG_MISMATCH")
    add("es256_no_es_key_match", es(es_claims, kid="rsa"), "ALG_MISMATCH")
    add("wrong_kid", hs(hs_claims, kid="nope"), "UNKNOWN_KID")
    add("kid_number", hs_sign(compact({"alg": "HS256", "kid": 5}, hs_claims)),
        "BAD_HEADER")
    add("crit", hs_sign(compact({"alg": "HS256", "kid": "hs",
                                 "crit": ["exp"]}, hs_claims)),
        "UNSUPPORTED_CRIT")
    add("wrong_secret", jwt.encode(hs_claims, SECRET + "x", algorithm="HS256",
                                   headers={"kid": "hs"}), "BAD_SIGNATURE")

    # --- tampering ---------------------------------------------------------
    def tamper_payload(token, claims):
        h, _, s = token.split(".")
        return h + "." + b64(json.dumps(claims)) + "." + s

    def tamper_signature(token):
        h, p, s = token.split(".")
        first = "B" if s[0] == "A" else "A"
        return h + "." + p + "." + first + s[1:]

    add("hs256_tampered_payload",
        tamper_payload(hs_ok, dict(hs_claims, sub="mallory")), "BAD_SIGNATURE")
    add("rs256_tampered_payload",
        tamper_payload(rs_ok, dict(rs_claims, roles=["root"])),
        "BAD_SIGNATURE")
    add("es256_tampered_payload",
        tamper_payload(es_ok, dict(es_claims, sub="mallory")), "BAD_SIGNATURE")
    add("hs256_tampered_signature", tamper_signature(hs_ok), "BAD_SIGNATURE")
    add("rs256_tampered_signature", tamper_signature(rs_ok), "BAD_SIGNATURE")
    add("es256_tampered_signature", tamper_signature(es_ok), "BAD_SIGNATURE")
    def truncate_signature(token):
        h, p, s = token.split(".")
        raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        return h + "." + p + "." + b64(raw[:-1])

    add("hs256_signature_truncated", truncate_signature(hs_ok),
        "BAD_SIGNATURE", note="31 bytes")
    add("rs256_signature_truncated", truncate_signature(rs_ok),
        "BAD_SIGNATURE", note="255 bytes")
    h, p, s = es_ok.split(".")
    raw = base64.urlsafe_b64decode(s + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                               int.from_bytes(raw[32:], "big"))
    add("es256_der_signature", h + "." + p + "." + b64(der), "BAD_SIGNATURE",
        note="JWS wants raw r||s (64 bytes), not DER")
    add("es256_signature_65", h + "." + p + "." + b64(raw + b"\0"),
        "BAD_SIGNATURE")
    add("es256_zero_signature", h + "." + p + "." + b64(b"\0" * 64),
        "BAD_SIGNATURE")
    add("hs256_empty_signature", hs_ok.rsplit(".", 1)[0] + ".",
        "BAD_SIGNATURE")

    # --- encoding ----------------------------------------------------------
    h, p, s = hs_ok.split(".")
    add("bad_base64_char", h + "." + p[:10] + "*" + p[11:] + "." + s,
        "BAD_BASE64")
    add("bad_base64_plus", h + "." + p[:10] + "+" + p[11:] + "." + s,
        "BAD_BASE64", note="standard base64's '+' is not base64url")
    add("bad_base64_length", h + "." + p + "A." + s if len(p) % 4 == 0
        else h + "." + p[:len(p) - len(p) % 4] + "A." + s, "BAD_BASE64",
        note="a segment of length 4n+1 is never valid")
    add("base64_padding", b64('{"alg":"HS256","kid":"hs"}') + "==." + p + "."
        + s, "BAD_BASE64", note="'=' is not allowed (JWS has no padding)")
    add("two_segments", h + "." + p, "MALFORMED_TOKEN")
    add("four_segments", hs_ok + ".x", "MALFORMED_TOKEN")
    add("empty_header_segment", "." + p + "." + s, "MALFORMED_TOKEN")
    add("header_not_json", b64("not json") + "." + p + "." + s, "BAD_HEADER")
    add("header_array", b64('["alg","HS256"]') + "." + p + "." + s,
        "BAD_HEADER")
    add("header_duplicate_alg",
        hs_sign(b64('{"alg":"none","alg":"HS256","kid":"hs"}') + "." + p),
        "BAD_HEADER", note="duplicate keys are refused, not last-wins")
    add("claims_duplicate_sub",
        hs_sign(b64('{"alg":"HS256","kid":"hs"}') + "." + b64(
            '{"sub":"alice","sub":"root","iss":"keel-test","exp":%d}'
            % FUTURE)), "BAD_CLAIMS")
    add("claims_array", hs_sign(b64('{"alg":"HS256","kid":"hs"}') + "."
                                + b64("[1,2,3]")), "BAD_CLAIMS")
    add("claims_not_json", hs_sign(b64('{"alg":"HS256","kid":"hs"}') + "."
                                   + b64("{sub: alice}")), "BAD_CLAIMS")
    add("claims_too_deep",
        hs_sign(b64('{"alg":"HS256","kid":"hs"}') + "." + b64(
            '{"sub":"alice","iss":"keel-test","exp":%d,"x":%s1%s}'
            % (FUTURE, "[" * 40, "]" * 40))), "TOO_DEEP")

    # Cross-check with PyJWT what it can judge: every OK token decodes.
    keys = {"hs": SECRET, "rsa": rsa_key.public_key(),
            "ec": ec_key.public_key()}
    for v in vectors:
        if v["expect"] != "OK":
            continue
        header = jwt.get_unverified_header(v["token"])
        alg = header["alg"]
        key = keys.get(header.get("kid")) or {
            "HS256": SECRET, "RS256": rsa_key.public_key(),
            "ES256": ec_key.public_key()}[alg]
        jwt.decode(v["token"], key, algorithms=[alg],
                   options={"verify_exp": False, "verify_nbf": False,
                            "verify_aud": False})

    out = {"now": NOW, "leeway": LEEWAY, "secret": SECRET, "iss": ISS,
           "aud": AUD, "vectors": vectors}
    with open(os.path.join(HERE, "vectors.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %d vectors" % len(vectors))


if __name__ == "__main__":
    main()
