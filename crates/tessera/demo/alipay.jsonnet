// Alipay → identity traits. Alipay shares no email, so the person types one on the next page;
// the nickname becomes the first name, and the ids go to metadata_public (user_id only for
// apps older than Alipay's OpenID migration, open_id for the others).
local claims = std.extVar('claims');
local raw = claims.raw_claims;
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      [if 'user_id' in raw then 'alipay_user_id' else null]: raw.user_id,
      [if 'open_id' in raw then 'alipay_open_id' else null]: raw.open_id,
    },
  },
}
