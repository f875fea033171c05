// Patreon → identity traits: the email only when Patreon confirmed it (`is_email_verified`,
// which Tessera turns into `email_verified`), the first and last names, and the Patreon id
// and vanity name in metadata_public.
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
    metadata_public: {
      patreon_id: claims.sub,
      [if 'username' in claims then 'patreon_vanity' else null]: claims.username,
    },
  },
}
