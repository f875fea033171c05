// Naver → identity traits. Naver sends no verified flag, so the email (when the person agreed
// to share it) becomes the `email` trait, which Tessera's own verification can confirm; without
// one the registration page asks for it. The name is split at its first space; the Naver id
// (issued per app) and nickname go to metadata_public.
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
      naver_id: claims.sub,
      [if 'nickname' in claims then 'naver_nickname' else null]: claims.nickname,
    },
  },
}
