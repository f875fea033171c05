// A server-side app built on Logto's own Node SDK (`@logto/node`, which wraps `@logto/client`
// and `@logto/js`), driven by Tessera's tests (crates/tessera/tests/it/op_logto_sdk.rs). Apps
// written for Logto — the WordPress plugin's PHP SDK follows the same protocol — find the
// provider at `{endpoint}/oidc/.well-known/openid-configuration`, send Logto's scope names
// (`urn:logto:scope:organizations`, …), `prompt=consent` and, for APIs, `resource` (RFC 8707);
// the SDK then verifies the id_token itself (issuer, audience, signature from the JWKS).
//
//   node logto-client.mjs '{"endpoint": "...", "app_id": "...", "app_secret": "...",
//                           "redirect_uri": "...", "scopes": [...], "resources": [...]}'
//
// Protocol on stdio, one JSON object per line: it prints {"authorize": URL}; the test signs in
// with a browser and writes back {"callback": URL}; the SDK handles the callback and prints
// {"result": {"authenticated", "claims", "userinfo", "access_tokens": {resource: token}}} — or
// {"error": "..."} on any failure.
import LogtoClient from '@logto/node';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => JSON.parse((await lines.next()).value);

async function main() {
  // The SDK keeps its tokens and sign-in session in the app's storage; an in-memory map is
  // what a single request handler would hold.
  const kept = new Map();
  const storage = {
    getItem: async (k) => kept.get(k) ?? null,
    setItem: async (k, v) => { kept.set(k, v); },
    removeItem: async (k) => { kept.delete(k); },
  };
  let authorize = null;
  const client = new LogtoClient(
    {
      endpoint: cfg.endpoint,
      appId: cfg.app_id,
      appSecret: cfg.app_secret,
      scopes: cfg.scopes ?? [],
      resources: cfg.resources ?? [],
    },
    { storage, navigate: (url) => { authorize = url; } },
  );
  await client.signIn(cfg.redirect_uri);
  out({ authorize });
  const { callback } = await next();
  await client.handleSignInCallback(callback);
  const accessTokens = {};
  for (const r of cfg.resources ?? []) {
    // Each API's token comes from a refresh-token grant with `resource`, as Logto's SDKs do.
    accessTokens[r] = await client.getAccessToken(r);
  }
  out({
    result: {
      authenticated: await client.isAuthenticated(),
      claims: await client.getIdTokenClaims(),
      userinfo: await client.fetchUserInfo(),
      access_tokens: accessTokens,
    },
  });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.cause ? ` (cause: ${JSON.stringify(e.cause)})` : ''}` });
    process.exit(1);
  },
);
