// A service that trades a user's access token for one to another API (RFC 8693 token
// exchange) with the real `openid-client` (its generic grant request), and the downstream API
// that checks the exchanged token with the real `jose`, from the JWKS alone. Driven by
// crates/tessera/tests/it/op_token_exchange.rs.
//
//   node token-exchange.mjs '{"issuer": "...", "client_id": "...", "client_secret": "...",
//                             "subject_token": "...", "subject_token_type": "...",
//                             "actor_token": "..."?, "actor_token_type": "..."?,
//                             "resource": "...", "scope": "..."?}'
//
// Prints one line: {"result": {"advertised": bool, "response": {...}, "verified": {...},
// "wrong_audience": {...}}}, or {"refused": {"error": "...", "status": N}} when Tessera
// refuses the exchange.
import * as oidc from 'openid-client';
import * as jose from 'jose';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

// The downstream API: signature from the issuer's JWKS, `iss`, `aud` and `typ` (RFC 9068 §4).
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

try {
  const c = await oidc.discovery(
    new URL(cfg.issuer),
    cfg.client_id,
    undefined,
    oidc.ClientSecretBasic(cfg.client_secret),
    { execute: [oidc.allowInsecureRequests] },
  );
  const advertised = (c.serverMetadata().grant_types_supported || []).includes(GRANT);
  const params = {
    subject_token: cfg.subject_token,
    subject_token_type: cfg.subject_token_type,
    resource: cfg.resource,
  };
  if (cfg.scope) params.scope = cfg.scope;
  if (cfg.actor_token) {
    params.actor_token = cfg.actor_token;
    params.actor_token_type = cfg.actor_token_type;
  }
  let response;
  try {
    response = await oidc.genericGrantRequest(c, GRANT, params);
  } catch (e) {
    out({ refused: { error: e.error || e.code || String(e), status: e.status } });
    process.exit(0);
  }
  out({
    result: {
      advertised,
      response: {
        token_type: response.token_type,
        issued_token_type: response.issued_token_type,
        scope: response.scope,
        expires_in: response.expires_in,
        refresh_token: response.refresh_token ?? null,
        access_token: response.access_token,
      },
      verified: await verify(response.access_token, cfg.resource),
      wrong_audience: await verify(response.access_token, 'https://other.example.test/api'),
    },
  });
} catch (e) {
  out({ error: String(e && e.stack ? e.stack : e) });
}
