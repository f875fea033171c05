// Douyin → identity traits. Douyin shares no email, so the person types one on the next page;
// the nickname becomes the first name, and the ids go to metadata_public.
local claims = std.extVar('claims');
local raw = claims.raw_claims;
{
  identity: {
    traits: {
      [if 'nickname' in claims then 'name' else null]: { first: claims.nickname },
    },
    metadata_public: {
      douyin_open_id: raw.open_id,
      [if 'union_id' in raw then 'douyin_union_id' else null]: raw.union_id,
    },
  },
}
