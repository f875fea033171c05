// A device (a TV app, a CLI) built on the real `openid-client` npm package, signing in through
// Tessera's device authorization grant (RFC 8628), driven by crates/tessera/tests/it/op_device.rs.
//
//   node device-client.mjs '{"issuer": "...", "client_id": "...", "scope": "openid offline_access"}'
//
// Protocol on stdio, one JSON object per line: it asks for a device code and prints
// {"device": {"user_code", "verification_uri", "verification_uri_complete", "expires_in",
// "interval"}}; the test approves (or denies) in a browser; the package polls the token endpoint
// at the interval given (handling authorization_pending and slow_down itself) and prints
// {"result": {"claims", "userinfo", "refresh_token": bool}} — or {"error": "<error code>: ..."}.
import * as oidc from 'openid-client';

const cfg = JSON.parse(process.argv[2]);
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

async function main() {
  // A device app is public: it cannot keep a secret.
  const config = await oidc.discovery(new URL(cfg.issuer), cfg.client_id, undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
  const device = await oidc.initiateDeviceAuthorization(config, { scope: cfg.scope });
  out({
    device: {
      user_code: device.user_code,
      verification_uri: device.verification_uri,
      verification_uri_complete: device.verification_uri_complete,
      expires_in: device.expires_in,
      interval: device.interval,
    },
  });
  const tokens = await oidc.pollDeviceAuthorizationGrant(config, device);
  const claims = tokens.claims();
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
  out({ result: { claims, userinfo, refresh_token: typeof tokens.refresh_token === 'string' } });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ error: `${e?.error ?? e?.code ?? e?.name}: ${e?.error_description ?? e?.message ?? e}` });
    process.exit(1);
  },
);
