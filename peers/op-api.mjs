// An API (resource server) protected with the real `jose` npm package, and the apps that call
// it through the real `openid-client`, driven by crates/tessera/tests/it/op_apis.rs: Tessera's
// JWT access tokens (RFC 9068) checked by code nobody here wrote, from the JWKS alone.
//
//   node op-api.mjs '{"issuer": "...", "client_id": "...", "client_secret": "...",
//                     "redirect_uri": "...", "resource": "...", "scope": "...",
//                     "auth": "client_secret_basic"|"none", "mode": "code"|"cc"|"rs"}'
//
// Protocol on stdio, one JSON object per line.
// - mode "code": prints {"authorize": URL} (with `resource`); the test signs in and writes back
//   {"callback": URL}; the code is exchanged with `resource` (PKCE S256), the access token is
//   verified by the API, then refreshed for the same resource, and a refresh for
//   `other_resource` is attempted; prints {"result": {...}}.
// - mode "cc": client credentials with `resource`, the token verified by the API.
// - mode "par": the code flow through a pushed authorization request (RFC 9126,
//   openid-client's buildAuthorizationUrlWithPAR): prints {"authorize": URL} (client_id and
//   request_uri only), reads {"callback": URL}, exchanges the code; prints {"result": {...}}.
// - mode "rs": the API alone: for each line {"token": T, "audience": A} it prints
//   {"ok": true, "claims": {...}, "header": {...}} or {"ok": false, "code": "..."}; for
//   {"forge": T} it prints {"none": T1, "resigned": T2}: T's claims with `alg: none`, and
//   re-signed with a fresh RSA key under T's `kid`.
import * as oidc from 'openid-client';
import * as jose from 'jose';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => {
  const l = await lines.next();
  return l.done ? null : JSON.parse(l.value);
};

// The resource server: signature from the issuer's JWKS, `iss`, `aud` and `typ` (RFC 9068 §4).
const jwks = jose.createRemoteJWKSet(new URL(`${cfg.issuer}/jwks`));
async function verify(token, audience) {
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
      issuer: cfg.issuer,
      audience,
      typ: 'at+jwt',
      algorithms: ['RS256', 'ES256'],
    });
    return { ok: true, claims: payload, header: protectedHeader };
  } catch (e) {
    return { ok: false, code: e.code || e.name };
  }
}

async function forge(token) {
  const [h, p] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const none = new jose.UnsecuredJWT(claims).encode();
  // UnsecuredJWT writes {"alg":"none"}; add the typ an honest token has.
  const noneTyped = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${none.split('.')[1]}.`;
  const { privateKey } = await jose.generateKeyPair('RS256');
  const resigned = await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: header.kid })
    .sign(privateKey);
  return { none: noneTyped, resigned };
}

async function config() {
  const auth = cfg.auth === 'none' ? oidc.None() : oidc.ClientSecretBasic(cfg.client_secret);
  return oidc.discovery(new URL(cfg.issuer), cfg.client_id, undefined, auth, {
    execute: [oidc.allowInsecureRequests],
  });
}

const failure = (e) => e.error || e.code || String(e);

async function code() {
  const c = await config();
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(c, {
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    resource: cfg.resource,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  out({ authorize: url.href });
  const { callback } = await next();
  const tokens = await oidc.authorizationCodeGrant(
    c,
    new URL(callback),
    { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    { resource: cfg.resource },
  );
  const result = {
    id_token_sub: tokens.claims().sub,
    scope: tokens.scope,
    token_type: tokens.token_type,
    verified: await verify(tokens.access_token, cfg.resource),
    wrong_audience: await verify(tokens.access_token, 'https://other.example/api'),
  };
  const refreshed = await oidc.refreshTokenGrant(c, tokens.refresh_token, { resource: cfg.resource });
  result.refreshed = await verify(refreshed.access_token, cfg.resource);
  try {
    await oidc.refreshTokenGrant(c, refreshed.refresh_token, { resource: cfg.other_resource });
    result.widened = 'accepted';
  } catch (e) {
    result.widened = failure(e);
  }
  out({ result });
}

async function par() {
  const c = await config();
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = await oidc.buildAuthorizationUrlWithPAR(c, {
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  out({ authorize: url.href });
  const { callback } = await next();
  const tokens = await oidc.authorizationCodeGrant(c, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  out({ result: { sub: tokens.claims().sub, scope: tokens.scope } });
}

async function cc() {
  const c = await config();
  const params = { resource: cfg.resource };
  if (cfg.scope) params.scope = cfg.scope;
  const tokens = await oidc.clientCredentialsGrant(c, params);
  out({
    result: {
      scope: tokens.scope,
      access_token: tokens.access_token,
      verified: await verify(tokens.access_token, cfg.resource),
    },
  });
}

async function rs() {
  for (let m = await next(); m; m = await next()) {
    if (m.forge) out(await forge(m.forge));
    else out(await verify(m.token, m.audience));
  }
}

const modes = { code, cc, par, rs };
modes[cfg.mode]().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}${e.error ? ` (${e.error}: ${e.error_description})` : ''}` });
    process.exit(1);
  },
);
