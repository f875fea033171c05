// The SPA's whole logic: sign in with oidc-client-ts's UserManager, and on /callback redeem the
// code (a cross-origin POST to Tessera's token endpoint), call userinfo with the access token,
// and try introspection (which must stay closed to browsers). Results go into the page, where
// peers/browser/suite.mjs reads them; #status ends as "signed in" or "error: <message>".

/* global oidc, SPA_CONFIG */
const $ = (id) => document.getElementById(id);
const manager = new oidc.UserManager({
  authority: SPA_CONFIG.authority,
  client_id: SPA_CONFIG.client_id,
  redirect_uri: `${location.origin}/callback`,
  response_type: 'code',
  scope: 'openid profile email',
  loadUserInfo: false,
  userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
});

/// A fetch the browser blocks for CORS rejects with a TypeError; anything else is an answer.
async function reachable(url, init) {
  try {
    const r = await fetch(url, init);
    return `answered ${r.status}`;
  } catch (e) {
    return `blocked (${e.name})`;
  }
}

async function callback() {
  const user = await manager.signinRedirectCallback();
  $('sub').textContent = user.profile.sub;
  $('email').textContent = user.profile.email ?? '';
  const userinfoUrl = await manager.metadataService.getUserInfoEndpoint();
  const r = await fetch(userinfoUrl, { headers: { Authorization: `Bearer ${user.access_token}` } });
  if (!r.ok) throw new Error(`userinfo answered ${r.status}`);
  const info = await r.json();
  if (info.sub !== user.profile.sub) throw new Error(`userinfo sub ${info.sub} is not the id_token's ${user.profile.sub}`);
  $('userinfo-email').textContent = info.email ?? '';
  const introspection = (await manager.metadataService.getMetadata()).introspection_endpoint;
  $('introspection').textContent = await reachable(introspection, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: user.access_token, client_id: SPA_CONFIG.client_id }),
  });
  $('status').textContent = 'signed in';
}

async function main() {
  if (location.pathname === '/callback') {
    await callback();
  } else {
    const button = $('sign-in');
    button.addEventListener('click', () => {
      manager.signinRedirect().catch((e) => { $('status').textContent = `error: ${e.message}`; });
    });
    button.hidden = false;
    $('status').textContent = 'signed out';
  }
}

main().catch((e) => { $('status').textContent = `error: ${e.message}`; });
