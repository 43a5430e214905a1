// Benchmark peer for nomos-issuer: node's oidc-provider (9.x) configured to
// answer the OAuth 2.0 client-credentials grant with ES256-signed JWT access
// tokens for the audience sts.amazonaws.com, on 127.0.0.1 only.
//
// Usage: node bench/peer/server.mjs PORT
//
// Single process on purpose (the comparison is one process per issuer);
// PEER_WORKERS is accepted but anything other than 1 is ignored with a notice.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

// Koa (underneath oidc-provider) reads NODE_ENV when the app is constructed.
process.env.NODE_ENV ??= 'production';

const usage = 'usage: node bench/peer/server.mjs PORT';
const portArg = process.argv[2];
if (!portArg || !/^\d+$/.test(portArg) || Number(portArg) < 1 || Number(portArg) > 65535) {
  process.stderr.write(`${usage}\n`);
  process.exit(2);
}
const port = Number(portArg);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;

if (process.env.PEER_WORKERS !== undefined && process.env.PEER_WORKERS !== '1') {
  process.stderr.write(
    `peer: PEER_WORKERS=${process.env.PEER_WORKERS} ignored, running a single process\n`,
  );
}

// Fixed benchmark credentials (not a secret: loopback-only bench fixture).
const CLIENT_ID = 'bench';
const CLIENT_SECRET = 'VY5h0TJO20H92aPXNaLWX4ZkbHi4X1BAdJ_a9fyVk9g';

const RESOURCE = 'https://sts.amazonaws.com/';
const AUDIENCE = 'sts.amazonaws.com';
const TOKEN_TTL = 300;

// Fresh P-256 signing key per start; kid is the RFC 7638 thumbprint.
function makeSigningJwk() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  const thumbprintInput = JSON.stringify({
    crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y,
  });
  const kid = createHash('sha256').update(thumbprintInput).digest('base64url');
  return { ...jwk, kid, alg: 'ES256', use: 'sig' };
}

const { default: Provider, errors } = await import('oidc-provider');

const resourceServer = {
  scope: '',
  audience: AUDIENCE,
  accessTokenFormat: 'jwt',
  accessTokenTTL: TOKEN_TTL,
  jwt: { sign: { alg: 'ES256' } },
};

const configuration = {
  // adapter left unset: oidc-provider's built-in in-memory adapter. JWT access
  // tokens are not persisted by it anyway (only opaque ones are).
  jwks: { keys: [makeSigningJwk()] },
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  clientDefaults: {
    id_token_signed_response_alg: 'ES256',
  },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? RESOURCE,
      getResourceServerInfo: async (_ctx, resourceIndicator, _client) => {
        if (resourceIndicator !== RESOURCE) {
          throw new errors.InvalidTarget();
        }
        return resourceServer;
      },
    },
  },
  ttl: {
    // Explicit so oidc-provider does not print its "SHOULD change" notice.
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL,
  },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
  },
};

const provider = new Provider(issuer, configuration);
// No Koa error printing per failed request; real server faults still surface.
provider.silent = true;
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`peer: server_error: ${err?.stack ?? err}\n`);
});

const server = createServer(provider.callback());

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Safety net: never hang on shutdown.
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.on('error', (err) => {
  process.stderr.write(`peer: ${err.message}\n`);
  process.exit(1);
});

server.listen(port, host, () => {
  process.stdout.write(`peer listening on ${issuer}\n`);
});
