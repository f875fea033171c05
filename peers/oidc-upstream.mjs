// A real, third-party OpenID Provider (the `oidc-provider` npm package) for Tessera's social
// sign-in tests: the "generic OIDC" upstream that nobody on this project wrote, so Tessera's
// relying-party code is checked against someone else's reading of the specs.
//
//   node peers/oidc-upstream.mjs '<config json>'      (or the config as the first line of stdin)
//
// Config: {
//   "port": 0,                                   optional; 0 (default) = any free port
//   "clients": [{ "client_id", "client_secret", "redirect_uris": [...],
//                 "token_endpoint_auth_method"? }],  default client_secret_basic
//   "accounts": { "<sub>": { "email": ..., "email_verified": ..., "name": ..., "groups": [...] } },
//   "claims": { "<scope>": ["claim", ...] },     optional; replaces the scope→claims map below
//   "conform_id_token_claims": true              optional; oidc-provider's default, see below
// }
//
// Prints exactly one line, `READY <issuer>`, on stdout once it listens on 127.0.0.1; everything
// else (oidc-provider's notices, errors) goes to stderr. Exits on SIGTERM, SIGINT, or when stdin
// closes, so a parent that dies never leaves it behind.
//
// What is switched on, and why:
// - PKCE S256 is required for every client: Tessera must always send it to a generic upstream.
// - The RFC 9207 `iss` authorization response parameter: oidc-provider 9 always sends it and
//   advertises `authorization_response_iss_parameter_supported`.
// - The `claims` request parameter (Kratos's `requested_claims`).
// - userinfo (`/me`), RS256 id_tokens signed with a key generated at start.
// - `conform_id_token_claims` (oidc-provider's `conformIdTokenClaims`, default true): with it, an
//   id_token issued next to an access token (the code flow) holds only `sub` plus the claims
//   asked for through the `claims` parameter; scope claims (email, profile, …) come from
//   userinfo. Set it to false to get them in the id_token too, as Google or Keycloak do.
// - The development login UI is replaced by the smallest form a test (or a browser) can drive:
//   `GET /interaction/:uid` shows a form with one text input, `account`; posting it to
//   `/interaction/:uid/login` signs that account in and grants every requested scope and claim
//   at once. `/interaction/:uid/abort` sends the browser back with `error=access_denied`.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';

import Provider from 'oidc-provider';

// stdout carries the READY line and nothing else: oidc-provider prints its notices through
// console.info, so those are moved to stderr.
console.log = console.error;
console.info = console.error;

const STANDARD_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: [
    'name', 'given_name', 'family_name', 'middle_name', 'nickname', 'preferred_username',
    'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
  ],
  phone: ['phone_number', 'phone_number_verified'],
  address: ['address'],
};

function fail(message) {
  process.stderr.write(`oidc-upstream: ${message}\n`);
  process.exit(1);
}

function readConfig() {
  if (process.argv[2]) return Promise.resolve(process.argv[2]);
  // Only the first line: stdin stays open afterwards as the parent's lifeline.
  return new Promise((resolve) => {
    let buffered = '';
    const done = (text) => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.pause();
      resolve(text);
    };
    const onData = (chunk) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl !== -1) done(buffered.slice(0, nl));
    };
    const onEnd = () => done(buffered);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
  });
}

// Every claim a configured account has is released: standard claims under their standard scope,
// anything else (e.g. `groups`) with `openid`, so a test sees it without inventing scopes.
function claimsConfig(accounts) {
  const known = new Set(Object.values(STANDARD_CLAIMS).flat());
  const extra = new Set();
  for (const claims of Object.values(accounts)) {
    for (const name of Object.keys(claims)) {
      if (!known.has(name) && name !== 'sub') extra.add(name);
    }
  }
  return { ...STANDARD_CLAIMS, openid: ['sub', ...extra] };
}

function html(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, clientId, error) {
  const id = encodeURIComponent(uid);
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in to the test upstream</title></head>
<body>
<h1>Sign in</h1>
<p>Client: ${html(clientId)}</p>
${error ? `<p role="alert" class="error">${html(error)}</p>` : ''}
<form method="post" action="/interaction/${id}/login">
<label>Account <input type="text" name="account" autofocus></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${id}/abort">
<button type="submit">Deny</button>
</form>
</body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) throw new Error('form body too large');
  }
  return new URLSearchParams(body);
}

// Grants everything the authorization request asked for: the scopes and the claims of the
// `claims` parameter (without them in the grant oidc-provider would prompt for consent).
async function grantAll(provider, details, accountId, existingGrantId) {
  const { params } = details;
  const grant = existingGrantId
    ? await provider.Grant.find(existingGrantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  if (params.claims) {
    const requested = JSON.parse(params.claims);
    const names = [
      ...Object.keys(requested.id_token ?? {}),
      ...Object.keys(requested.userinfo ?? {}),
    ];
    if (names.length) grant.addOIDCClaims(names);
  }
  return grant.save();
}

async function main() {
  let config;
  try {
    config = JSON.parse(await readConfig());
  } catch (e) {
    fail(`the config (argv[2] or the first line of stdin) is not JSON: ${e.message}`);
  }
  const accounts = config.accounts ?? {};
  const clients = (config.clients ?? []).map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }));
  if (!clients.length) fail('the config has no clients');

  const server = createServer();
  server.listen(config.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: config.claims ?? claimsConfig(accounts),
    conformIdTokenClaims: config.conform_id_token_claims ?? true,
    // Fixed lifetimes (seconds) instead of oidc-provider's default functions, which log a notice.
    ttl: { Interaction: 3600, Session: 86400, Grant: 86400 },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
    },
    async findAccount(_ctx, sub) {
      const claims = accounts[sub];
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ ...claims, sub }) };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    clientBasedCORS: () => false,
    async renderError(ctx, out, error) {
      process.stderr.write(`oidc-upstream: error page: ${JSON.stringify(out)} ${error?.stack ?? ''}\n`);
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><h1>Error</h1>${Object.entries(out)
        .map(([k, v]) => `<p><b>${html(k)}</b>: ${html(v)}</p>`)
        .join('')}</body></html>`;
    },
  });

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(event, (_ctx, err) => process.stderr.write(`oidc-upstream: ${event}: ${err?.message} ${err?.error_description ?? ''}\n`));
  }

  // The interaction routes run before oidc-provider's own router.
  provider.use(async (ctx, next) => {
    const m = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(ctx.path);
    if (!m) return next();
    const [, uid, action] = m;
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (details.uid !== uid) ctx.throw(400, 'interaction cookie does not match the URL');
      const finish = async (result) => {
        const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
        ctx.status = 303;
        ctx.set('location', to);
        ctx.body = '';
      };

      if (!action && ctx.method === 'GET') {
        if (details.prompt.name === 'login') {
          ctx.type = 'html';
          ctx.body = loginPage(uid, details.params.client_id);
          return undefined;
        }
        // Already signed in, only consent missing (a new client or scope): grant it silently.
        const accountId = details.session.accountId;
        const grantId = await grantAll(provider, details, accountId, details.grantId);
        return finish({ consent: { grantId } });
      }
      if (action === 'login' && ctx.method === 'POST') {
        const account = (await readForm(ctx.req)).get('account') ?? '';
        if (!Object.hasOwn(accounts, account)) {
          ctx.status = 400;
          ctx.type = 'html';
          ctx.body = loginPage(uid, details.params.client_id, `unknown account: ${account}`);
          return undefined;
        }
        const grantId = await grantAll(provider, details, account);
        return finish({ login: { accountId: account }, consent: { grantId } });
      }
      if (action === 'abort' && ctx.method === 'POST') {
        return finish({ error: 'access_denied', error_description: 'End-User aborted interaction' });
      }
      ctx.throw(405, 'method not allowed');
    } catch (err) {
      if (err.expose) throw err;
      process.stderr.write(`oidc-upstream: interaction ${uid}: ${err.stack ?? err}\n`);
      ctx.status = 400;
      ctx.type = 'text';
      ctx.body = `interaction failed: ${err.message}`;
    }
    return undefined;
  });

  server.on('request', provider.callback());
  process.stdout.write(`READY ${issuer}\n`);
}

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

main()
  .then(() => {
    if (process.stdin.readableEnded) stop();
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  })
  .catch((e) => fail(e.stack ?? String(e)));
