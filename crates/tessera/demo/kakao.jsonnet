// Kakao → identity traits: the email only when Kakao says it is valid and verified
// (`email_verified`), otherwise the registration page asks for one; the profile nickname split
// at its first space as the name; the Kakao id in metadata_public.
local claims = {
  email_verified: false,
} + std.extVar('claims');
local parts = if 'nickname' in claims then std.splitLimit(claims.nickname, ' ', 1) else [];
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
      kakao_id: claims.sub,
    },
  },
}
