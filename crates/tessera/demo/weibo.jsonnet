// Sina Weibo → identity traits. Weibo shares no email with ordinary apps, so the person types
// one on the next page; the screen name becomes the first name, and the Weibo id goes to
// metadata_public.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      weibo_uid: claims.sub,
    },
  },
}
