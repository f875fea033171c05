// QQ → identity traits. QQ shares no email, so the person types one on the next page; the
// nickname becomes the first name, and the ids go to metadata_public.
local claims = std.extVar('claims');
local raw = claims.raw_claims;
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      qq_openid: raw.openid,
      [if 'unionid' in raw then 'qq_unionid' else null]: raw.unionid,
    },
  },
}
