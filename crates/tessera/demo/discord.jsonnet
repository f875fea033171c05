// Discord → identity traits, after Kratos's documented Discord mapper: the email only when
// Discord marks it verified (`verified` in the user object, `email_verified` in the claims),
// the display name (`global_name`, else the username) as the first name, and the username in
// public metadata.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local raw = claims.raw_claims;
local display = if std.get(raw, 'global_name', null) != null then raw.global_name else std.get(claims, 'nickname', null);
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
      [if display != null then 'name' else null]: { first: display },
    },
    metadata_public: {
      [if 'nickname' in claims then 'discord_username' else null]: claims.nickname,
    },
  },
}
