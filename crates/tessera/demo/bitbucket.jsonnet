// Bitbucket → identity traits: the primary address only when Bitbucket has it confirmed
// (`email_verified`), otherwise the registration page asks for one; the display name split at
// its first space; the nickname in metadata_public.
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
      [if 'nickname' in claims then 'bitbucket_nickname' else null]: claims.nickname,
    },
  },
}
