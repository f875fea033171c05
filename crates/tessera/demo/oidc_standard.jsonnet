// A standard OpenID Connect provider (GitLab, Auth0, Slack, LinkedIn, Keycloak, Okta,
// Authentik, Casdoor) → identity traits: the email only when the provider marks it verified,
// and the given and family names.
local claims = {
  email_verified: false,
} + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      name: {
        [if 'given_name' in claims then 'first' else null]: claims.given_name,
        [if 'family_name' in claims then 'last' else null]: claims.family_name,
      },
    },
  },
}
