// UAE PASS → identity traits. UAE PASS verifies the email and mobile number of every account,
// so the email is taken; the English first and last names become the name. The account level
// goes to metadata_public: `SOP1` accounts have no verified Emirates ID, so a service that
// needs one checks `uaepass_emirates_id_verified` (UAE PASS asks services to tell SOP1 users
// their account is not eligible rather than to treat them as verified residents). The
// `uuid`, which UAE PASS asks services to keep, is kept.
local claims = std.extVar('claims');
local raw = claims.raw_claims;
local level = if 'userType' in raw then raw.userType else 'unknown';
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      name: {
        [if 'given_name' in claims then 'first' else null]: claims.given_name,
        [if 'family_name' in claims then 'last' else null]: claims.family_name,
      },
    },
    metadata_public: {
      [if 'uuid' in raw then 'uaepass_uuid' else null]: raw.uuid,
      uaepass_user_type: level,
      uaepass_emirates_id_verified: level == 'SOP2' || level == 'SOP3',
    },
    verified_addresses: if 'email' in claims then [{ value: claims.email, via: 'email' }] else [],
  },
}
