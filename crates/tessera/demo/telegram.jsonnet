// Telegram Login Widget (`provider: telegram`): the person's names, and the Telegram id and
// @username as public metadata. Telegram gives no email: the registration page asks for one.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'given_name' in claims then 'name' else null]: {
        first: claims.given_name,
        [if 'family_name' in claims then 'last' else null]: claims.family_name,
      },
    },
    metadata_public: {
      telegram_id: claims.sub,
      [if 'preferred_username' in claims then 'telegram_username' else null]: claims.preferred_username,
    },
  },
}
