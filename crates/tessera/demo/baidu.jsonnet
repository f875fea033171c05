// Baidu → identity traits. Baidu shares no email, so the person types one on the next page;
// the (masked) account name becomes the first name, and the openid goes to metadata_public.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      baidu_openid: claims.sub,
    },
  },
}
