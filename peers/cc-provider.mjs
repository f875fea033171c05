// The `oidc-provider` npm package as a client-credentials token server, for bench/op.sh only
// (Tessera's tokens/s are compared with it side by side). Lives here so that it resolves
// peers/node_modules.
//
//   node peers/cc-provider.mjs '{"client_id": "...", "client_secret": "...", "scope": "api:read"}'
//
// Prints `READY <issuer>` once it listens on 127.0.0.1 (any free port); exits on SIGTERM or when
// stdin closes. Opaque access tokens in oidc-provider's default in-memory adapter.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const server = createServer();
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: config.scope,
  }],
  scopes: config.scope.split(' '),
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { ClientCredentials: 3600 },
  features: { devInteractions: { enabled: false }, clientCredentials: { enabled: true } },
});
provider.on('server_error', (_ctx, err) => process.stderr.write(`cc-provider: ${err?.stack}\n`));
server.on('request', provider.callback());
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
process.stdout.write(`READY ${issuer}\n`);
