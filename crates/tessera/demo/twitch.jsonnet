// Twitch → identity traits: the email only when Twitch marks it verified (`email_verified`),
// otherwise the registration page asks for one; the display name (`preferred_username`) as the
// first name; the display name and the account name (`login`, from the token validation) in
// metadata_public.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local raw = std.get(claims, 'raw_claims', {});
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if 'preferred_username' in claims then 'name' else null]: { first: claims.preferred_username },
    },
    metadata_public: {
      [if 'preferred_username' in claims then 'twitch_display_name' else null]: claims.preferred_username,
      [if 'login' in raw then 'twitch_login' else null]: raw.login,
    },
  },
}
