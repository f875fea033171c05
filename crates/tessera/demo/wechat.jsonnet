// WeChat → identity traits. WeChat never shares an email or a phone number, so the person
// types an email on the next page; the nickname becomes the first name. The ids go to
// metadata_public: `unionid` (the same person in the company's other WeChat apps) when
// WeChat sends one, and the per-app `openid`.
local claims = std.extVar('claims');
local raw = claims.raw_claims;
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      wechat_openid: raw.openid,
      [if 'unionid' in raw then 'wechat_unionid' else null]: raw.unionid,
    },
  },
}
