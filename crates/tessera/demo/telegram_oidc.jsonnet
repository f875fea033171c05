// Telegram (OpenID Connect) → identity traits. Telegram shares no email, so the person types one
// on the next page; the name is split at its first space, the Telegram id and @username (and the
// phone number, with the `phone` scope) go to metadata_public.
local claims = std.extVar('claims');
local parts = if 'name' in claims then std.splitLimit(claims.name, ' ', 1) else [];
{
  identity: {
    traits: {
      [if std.length(parts) > 0 then 'name' else null]: {
        first: parts[0],
        [if std.length(parts) > 1 then 'last' else null]: parts[1],
      },
    },
    metadata_public: {
      telegram_id: claims.sub,
      [if 'preferred_username' in claims then 'telegram_username' else null]: claims.preferred_username,
      [if 'phone_number' in claims then 'telegram_phone' else null]: claims.phone_number,
    },
  },
}
