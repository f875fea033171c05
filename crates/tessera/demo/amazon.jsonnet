// Login with Amazon → identity traits. Amazon does not say whether the address was confirmed,
// so it becomes the `email` trait (which Tessera's own verification can confirm) and never a
// verified address; the name split at its first space; the Amazon user_id in metadata_public.
local claims = std.extVar('claims');
local parts = if 'name' in claims then std.splitLimit(claims.name, ' ', 1) else [];
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      [if std.length(parts) > 0 then 'name' else null]: {
        first: parts[0],
        [if std.length(parts) > 1 then 'last' else null]: parts[1],
      },
    },
    metadata_public: {
      amazon_user_id: claims.sub,
    },
  },
}
