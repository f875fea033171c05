// LINE → identity traits. LINE's email (in the id_token only, after the channel's email
// permission was approved) comes with no verified flag, so it becomes the `email` trait
// (which Tessera's own verification can confirm) and never a verified address; the display
// name split at its first space; the LINE user id in metadata_public.
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
      line_user_id: claims.sub,
    },
  },
}
