#!/usr/bin/env python3
"""Verify one nomos-issuer token with PyJWT, as an independent relying party would.

Usage: verify_pyjwt.py JWKS_URL ISSUER AUDIENCE TOKEN

The JWKS is fetched over HTTP(S) from JWKS_URL with PyJWT's PyJWKClient and the
verification key is chosen by the token header's `kid`. Accepted algorithms are
ES256 and RS256 only; if VERIFY_EXPECT_ALG is set (non-empty) the header `alg`
must be exactly that value.

Checked: signature, `iss` == ISSUER (exact string), `aud` == AUDIENCE (a single
string, not an array), `exp`/`nbf`/`iat` against the current time (no leeway
unless VERIFY_LEEWAY seconds is set), presence of iss, sub, aud, iat, exp, and
that the time claims are integers (AWS rejects fractional seconds).

Success: the verified claims as one line of JSON on stdout, exit status 0.
Failure: one line "pyjwt: <reason>" on stderr, exit status 1.
"""

import json
import os
import sys

ALLOWED_ALGS = ("ES256", "RS256")
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp")
# Key type (and curve) a JWK must have to be used with each algorithm.
KEY_SHAPE = {"ES256": ("EC", "P-256"), "RS256": ("RSA", None)}


class Rejected(Exception):
    """A verification failure with a human-readable reason."""


def one_line(text):
    return " ".join(str(text).split()) or "unknown error"


def fail(reason):
    sys.stderr.write("pyjwt: " + one_line(reason) + "\n")
    sys.stderr.flush()
    sys.exit(1)


def leeway_seconds():
    raw = os.environ.get("VERIFY_LEEWAY", "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise Rejected(f"VERIFY_LEEWAY must be an integer number of seconds, got {raw!r}")
    if value < 0:
        raise Rejected("VERIFY_LEEWAY must not be negative")
    return value


def verify(jwks_url, issuer, audience, token):
    import jwt  # imported here so a missing install is reported as one line
    from jwt import PyJWKClient

    leeway = leeway_seconds()

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Rejected(f"malformed token header: {exc}")

    alg = header.get("alg")
    if alg not in ALLOWED_ALGS:
        raise Rejected(f"header alg {alg!r} is not one of {list(ALLOWED_ALGS)}")
    expected_alg = os.environ.get("VERIFY_EXPECT_ALG", "")
    if expected_alg and alg != expected_alg:
        raise Rejected(f"header alg {alg!r} != VERIFY_EXPECT_ALG {expected_alg!r}")

    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Rejected("header has no kid (a string is required)")
    if header.get("crit") is not None:
        raise Rejected("header carries crit, which this verifier does not understand")

    client = PyJWKClient(jwks_url, cache_keys=False, timeout=5)
    try:
        signing_key = client.get_signing_key(kid)
    except jwt.PyJWKClientError as exc:
        raise Rejected(f"no usable key for kid {kid!r}: {exc}")

    # The key is bound to an algorithm (its `alg`, or derived from kty/crv) and
    # PyJWT refuses a header alg that differs; check the key's shape as well so
    # that a mismatch is reported plainly.
    want_kty, want_crv = KEY_SHAPE[alg]
    curve = getattr(getattr(signing_key.key, "curve", None), "name", None)
    if signing_key.key_type != want_kty or (want_crv and curve != "secp256r1"):
        raise Rejected(
            f"key {kid!r} (kty={signing_key.key_type!r}, curve={curve!r}) cannot verify {alg}"
        )
    if signing_key.algorithm_name != alg:
        raise Rejected(
            f"key {kid!r} is bound to alg {signing_key.algorithm_name!r}, token says {alg!r}"
        )

    try:
        claims = jwt.decode(
            token,
            key=signing_key,
            # A fixed list, never taken from the token; the header was already
            # checked against it above.
            algorithms=[a for a in ALLOWED_ALGS if not expected_alg or a == expected_alg],
            issuer=issuer,
            audience=audience,
            leeway=leeway,
            options={
                "verify_signature": True,
                "verify_exp": True,
                "verify_nbf": True,
                "verify_iat": True,
                "verify_iss": True,
                "verify_aud": True,
                "strict_aud": True,
                "require": list(REQUIRED_CLAIMS),
            },
        )
    except jwt.PyJWTError as exc:
        raise Rejected(f"{type(exc).__name__}: {exc}")

    # Belt and braces on top of PyJWT: exact comparisons and integer times.
    if claims.get("iss") != issuer:
        raise Rejected(f"iss {claims.get('iss')!r} != {issuer!r}")
    if claims.get("aud") != audience:
        raise Rejected(f"aud {claims.get('aud')!r} != {audience!r}")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Rejected("sub must be a non-empty string")
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            value = claims[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise Rejected(f"{name} must be an integer number of seconds, got {value!r}")
    return claims


def main(argv):
    if len(argv) != 5:
        fail("usage: verify_pyjwt.py JWKS_URL ISSUER AUDIENCE TOKEN")
    _, jwks_url, issuer, audience, token = argv
    try:
        claims = verify(jwks_url, issuer, audience, token.strip())
    except Rejected as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"PyJWT is not installed ({exc}); run tests/verifiers/install.sh")
    except Exception as exc:  # anything unexpected is still a rejection
        fail(f"unexpected {type(exc).__name__}: {exc}")
    sys.stdout.write(json.dumps(claims, separators=(",", ":"), sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
