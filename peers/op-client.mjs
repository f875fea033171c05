// A relying party built on the real `openid-client` npm package, driven by Tessera's tests
// (crates/tessera/tests/op_peers.rs) to check Tessera's OpenID Provider against someone else's
// reading of the specifications.
//
//   node op-client.mjs '{"issuer": "...", "client_id": "...", "client_secret": "...",
//                        "redirect_uri": "...", "post_logout_redirect_uri": "...",
//                        "auth": "client_secret_basic"|"client_secret_post"|"private_key_jwt"|"none",
//                        "private_jwk": {...},    (private_key_jwt: the app's P-256 key)
//                        "dpop": true,            (DPoP-bound tokens; prints {"stolen": …} and
//                                                  waits for a line before its last refresh)
//                        "jar": true, "par": true, (a signed request object, pushed or not)
//                        "acr_values": "aal2", "max_age": 0, (asked for, and max_age checked
//                                                 against auth_time by openid-client)
//                        "register": {...metadata}, "initial_access_token": "..."}'
//                                                 (dynamic client registration first)
//
// Protocol on stdio, one JSON object per line: it prints {"authorize": URL}; the test signs in
// with a browser and writes back {"callback": URL} (where Tessera redirected to); it then
// exchanges the code (PKCE S256, state and nonce checked, id_token validated by openid-client),
// reads userinfo, refreshes, introspects, revokes, builds the logout URL and prints
// {"result": {...}} — or {"error": "..."} on any failure.
import * as oidc from 'openid-client';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => JSON.parse((await lines.next()).value);

// The app's own P-256 key (private_key_jwt, JAR), as openid-client takes it.
async function appKey() {
  const key = await crypto.subtle.importKey(
    'jwk', cfg.private_jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'],
  );
  return { key, kid: cfg.private_jwk.kid };
}

async function main() {
  let auth;
  if (cfg.auth === 'private_key_jwt') {
    // The app holds only its private key; openid-client signs a fresh assertion (aud = issuer,
    // a new jti, 60 s) for every call to the token, introspection and revocation endpoints.
    auth = oidc.PrivateKeyJwt(await appKey());
  } else if (cfg.auth === 'client_secret_post') {
    auth = oidc.ClientSecretPost(cfg.client_secret);
  } else {
    auth = cfg.auth === 'none' ? oidc.None() : oidc.ClientSecretBasic(cfg.client_secret);
  }
  // With `register` (client metadata), the app registers itself first (RFC 7591) with the
  // operator's initial access token, and uses the client_id and secret it is given.
  const config = cfg.register
    ? await oidc.dynamicClientRegistration(new URL(cfg.issuer), cfg.register, undefined, {
      initialAccessToken: cfg.initial_access_token,
      execute: [oidc.allowInsecureRequests],
    })
    : await oidc.discovery(new URL(cfg.issuer), cfg.client_id, undefined, auth, {
      execute: [oidc.allowInsecureRequests],
    });
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const params = {
    redirect_uri: cfg.redirect_uri,
    scope: 'openid email profile offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (cfg.acr_values) params.acr_values = cfg.acr_values;
  if (cfg.max_age !== undefined) params.max_age = String(cfg.max_age);
  let url = oidc.buildAuthorizationUrl(config, params);
  if (cfg.jar) {
    // JAR (RFC 9101): the parameters travel as a request object signed with the app's key;
    // with `par`, that object is pushed first and only a request_uri goes through the browser.
    url = await oidc.buildAuthorizationUrlWithJAR(config, params, await appKey());
    if (cfg.par) {
      url = await oidc.buildAuthorizationUrlWithPAR(config, { request: url.searchParams.get('request') });
    }
  }
  out({ authorize: url.href });
  const { callback } = await next();
  // With `dpop`, every token, userinfo and refresh call carries a DPoP proof from this key
  // (RFC 9449); openid-client fetches the server's nonce on its own (use_dpop_nonce, retry).
  const dpop = cfg.dpop
    ? { DPoP: oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256')) }
    : undefined;
  const tokens = await oidc.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
    maxAge: cfg.max_age,
  }, undefined, dpop);
  const claims = tokens.claims();
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub, dpop);
  let refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, dpop);
  if (cfg.dpop) {
    // The test plays a thief with copies of both tokens (but not the key), then lets the app
    // refresh once more: the thief's failed attempts must not have spent the refresh token.
    out({ stolen: { access_token: refreshed.access_token, refresh_token: refreshed.refresh_token } });
    await next();
    refreshed = await oidc.refreshTokenGrant(config, refreshed.refresh_token, undefined, dpop);
  }
  const registered = config.clientMetadata();
  const result = {
    client_id: registered.client_id,
    registration_access_token: registered.registration_access_token,
    registration_client_uri: registered.registration_client_uri,
    token_type: tokens.token_type,
    sub: claims.sub,
    aud: claims.aud,
    email: claims.email,
    expires_in: tokens.expires_in,
    userinfo,
    refreshed_sub: refreshed.claims()?.sub,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    acr: claims.acr,
    amr: claims.amr,
    auth_time: claims.auth_time,
    refreshed_acr: refreshed.claims()?.acr,
  };
  if (cfg.auth !== 'none') {
    result.introspected = await oidc.tokenIntrospection(config, refreshed.access_token);
  }
  await oidc.tokenRevocation(config, refreshed.refresh_token);
  try {
    await oidc.refreshTokenGrant(config, refreshed.refresh_token, undefined, dpop);
    result.after_revocation = 'accepted';
  } catch (e) {
    result.after_revocation = e.error || e.code || String(e);
  }
  result.logout = oidc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: cfg.post_logout_redirect_uri,
    state: 'bye',
  }).href;
  out({ result });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e.name}: ${e.message}${e.error ? ` (${e.error}: ${e.error_description})` : ''}${e.cause ? ` cause: ${JSON.stringify(e.cause)}` : ''}` });
    process.exit(1);
  },
);
