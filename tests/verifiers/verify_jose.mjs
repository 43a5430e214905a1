#!/usr/bin/env node
// Verify one nomos-issuer token with the `jose` package, as an independent
// relying party would.
//
// Usage: node verify_jose.mjs JWKS_URL ISSUER AUDIENCE TOKEN
//
// The JWKS is fetched over HTTP(S) from JWKS_URL with createRemoteJWKSet and the
// key is chosen by the token header's `kid` (jose also matches kty/crv/alg/use).
// Accepted algorithms are ES256 and RS256 only; if VERIFY_EXPECT_ALG is set
// (non-empty) the header `alg` must be exactly that value.
//
// Checked: signature, `iss` === ISSUER, `aud` === AUDIENCE (a single string,
// not an array), exp/nbf/iat against the current time (no leeway unless
// VERIFY_LEEWAY seconds is set), presence of iss, sub, aud, iat, exp, and that
// the time claims are integers (AWS rejects fractional seconds).
//
// Success: the verified claims as one line of JSON on stdout, exit status 0.
// Failure: one line "jose: <reason>" on stderr, exit status 1.

const ALLOWED_ALGS = ['ES256', 'RS256'];
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'iat', 'exp'];

class Rejected extends Error {}

function oneLine(text) {
  const s = String(text).split(/\s+/).filter(Boolean).join(' ');
  return s || 'unknown error';
}

function fail(reason) {
  process.stderr.write(`jose: ${oneLine(reason)}\n`);
  // Let stderr drain, then leave with status 1 whatever else is pending.
  process.exitCode = 1;
  setImmediate(() => process.exit(1));
}

function leewaySeconds() {
  const raw = (process.env.VERIFY_LEEWAY ?? '').trim();
  if (raw === '') return 0;
  if (!/^[0-9]+$/.test(raw)) {
    throw new Rejected(`VERIFY_LEEWAY must be a non-negative integer number of seconds, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function decodeHeader(token, jose) {
  try {
    return jose.decodeProtectedHeader(token);
  } catch (err) {
    throw new Rejected(`malformed token header: ${err.message}`);
  }
}

async function verify(jwksUrl, issuer, audience, token) {
  // jose v6 uses the global WebCrypto object; older Node releases (18) only
  // expose it under node:crypto, so provide it before jose is loaded.
  if (!globalThis.crypto?.subtle) {
    const { webcrypto } = await import('node:crypto');
    Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true });
  }
  let jose;
  try {
    jose = await import('jose');
  } catch (err) {
    throw new Rejected(`the jose package is not installed (${err.message}); run tests/verifiers/install.sh`);
  }

  const leeway = leewaySeconds();
  const header = decodeHeader(token, jose);

  const alg = header.alg;
  if (!ALLOWED_ALGS.includes(alg)) {
    throw new Rejected(`header alg ${JSON.stringify(alg)} is not one of ${JSON.stringify(ALLOWED_ALGS)}`);
  }
  const expectedAlg = process.env.VERIFY_EXPECT_ALG ?? '';
  if (expectedAlg !== '' && alg !== expectedAlg) {
    throw new Rejected(`header alg ${JSON.stringify(alg)} != VERIFY_EXPECT_ALG ${JSON.stringify(expectedAlg)}`);
  }
  if (typeof header.kid !== 'string' || header.kid === '') {
    throw new Rejected('header has no kid (a string is required)');
  }

  let url;
  try {
    url = new URL(jwksUrl);
  } catch {
    throw new Rejected(`JWKS_URL is not a URL: ${JSON.stringify(jwksUrl)}`);
  }
  const jwks = jose.createRemoteJWKSet(url, { timeoutDuration: 5000 });

  let result;
  try {
    result = await jose.jwtVerify(token, jwks, {
      // A fixed list, never taken from the token; the header was already
      // checked against it above.
      algorithms: ALLOWED_ALGS.filter((a) => expectedAlg === '' || a === expectedAlg),
      issuer,
      audience,
      requiredClaims: REQUIRED_CLAIMS,
      clockTolerance: leeway,
    });
  } catch (err) {
    const code = err && err.code ? `${err.code}: ` : '';
    throw new Rejected(`${code}${err && err.message ? err.message : err}`);
  }

  const claims = result.payload;
  // Belt and braces on top of jose: exact comparisons, integer times, iat not
  // in the future (jose checks that only when maxTokenAge is given).
  if (result.protectedHeader.alg !== alg) {
    throw new Rejected('verified header alg differs from the decoded one');
  }
  if (claims.iss !== issuer) {
    throw new Rejected(`iss ${JSON.stringify(claims.iss)} !== ${JSON.stringify(issuer)}`);
  }
  if (typeof claims.aud !== 'string' || claims.aud !== audience) {
    throw new Rejected(`aud ${JSON.stringify(claims.aud)} is not the single string ${JSON.stringify(audience)}`);
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') {
    throw new Rejected('sub must be a non-empty string');
  }
  for (const name of ['iat', 'nbf', 'exp']) {
    if (name in claims && !Number.isSafeInteger(claims[name])) {
      throw new Rejected(`${name} must be an integer number of seconds, got ${JSON.stringify(claims[name])}`);
    }
  }
  const now = Math.floor(Date.now() / 1000);
  if (claims.iat > now + leeway) {
    throw new Rejected('the token is not yet valid (iat is in the future)');
  }
  return claims;
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

async function main(argv) {
  if (argv.length !== 4) {
    fail('usage: node verify_jose.mjs JWKS_URL ISSUER AUDIENCE TOKEN');
    return;
  }
  const [jwksUrl, issuer, audience, token] = argv;
  let claims;
  try {
    claims = await verify(jwksUrl, issuer, audience, token.trim());
  } catch (err) {
    fail(err instanceof Rejected ? err.message : `unexpected ${err && err.name ? err.name : 'error'}: ${err && err.message ? err.message : err}`);
    return;
  }
  process.stdout.write(`${JSON.stringify(sortKeys(claims))}\n`, () => process.exit(0));
}

process.on('unhandledRejection', (err) => fail(`unhandled: ${err && err.message ? err.message : err}`));
process.on('uncaughtException', (err) => fail(`uncaught: ${err && err.message ? err.message : err}`));

main(process.argv.slice(2));
