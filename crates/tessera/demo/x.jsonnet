// X → identity traits: the email only when X returns it (`confirmed_email`, which X returns
// only for a confirmed address, so `email_verified` is true); the display name split at its
// first space; the @username in metadata_public.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local parts = if 'name' in claims then std.splitLimit(claims.name, ' ', 1) else [];
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if std.length(parts) > 0 then 'name' else null]: {
        first: parts[0],
        [if std.length(parts) > 1 then 'last' else null]: parts[1],
      },
    },
    metadata_public: {
      [if 'preferred_username' in claims then 'x_username' else null]: claims.preferred_username,
    },
  },
}
