// Yandex ID → identity traits: the email when Yandex sends one (`default_email`, with the
// `login:email` right; Yandex does not say whether it is verified), and the first and last name.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims then 'email' else null]: claims.email,
      name: { first: claims.given_name, last: claims.family_name },
    },
  },
}
