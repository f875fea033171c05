//! The protocol's vocabulary as enums: grant types, response types and modes, PKCE methods,
//! client authentication methods, `prompt` values and signing algorithms.
//!
//! Each is parsed once, where a request or an app's metadata enters this crate, with an error
//! that names the value and lists the accepted ones ([`UnknownValue`]). Past that point the code
//! matches on enums exhaustively, so a new value cannot fall into another one's branch, and the
//! discovery document ([`crate::Discovery`]) lists exactly what the enums hold.

use std::fmt;
use std::str::FromStr;

/// A value this provider does not know, for a vocabulary `what` (`grant_type`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not supported: use {}", expected_list(expected))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: Vec<&'static str>,
}

/// `a, b or c`, with values that contain a space in backticks (`id_token token`).
pub fn expected_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| {
            if v.contains(' ') {
                format!("`{v}`")
            } else {
                (*v).to_string()
            }
        })
        .collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// An enum of wire strings: `ALL` (in the order discovery lists them), `as_str`, `FromStr`
/// (with [`UnknownValue`]), `Display` and serde as the wire string.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order the discovery document lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// The wire strings of `values`.
            pub fn strs(values: &[$name]) -> Vec<&'static str> {
                values.iter().map(|v| v.as_str()).collect()
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                $( if s == $wire { return Ok($name::$variant); } )+
                Err(UnknownValue {
                    what: $what,
                    value: s.to_string(),
                    expected: $name::strs($name::ALL),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// OAuth 2.0 grant types an app may be registered for.
    pub enum GrantType ("grant type") {
        AuthorizationCode = "authorization_code",
        Implicit = "implicit",
        RefreshToken = "refresh_token",
        ClientCredentials = "client_credentials",
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
        /// RFC 8693: a service trades a user's token for one to another API. Never a default:
        /// an operator lists it in a confidential app's `grant_types` (see `exchange.rs`).
        TokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange",
    }
}

impl GrantType {
    /// Grants redeemed at the token endpoint (the implicit grant answers at the authorization
    /// endpoint only).
    pub const TOKEN_ENDPOINT: &'static [GrantType] = &[
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
    ];

    /// Grants that sign a user in (every app type but `machine`); `None` for token exchange,
    /// which acts for a user signed in elsewhere and is open to every confidential app.
    pub const fn signs_users_in(self) -> Option<bool> {
        match self {
            GrantType::AuthorizationCode
            | GrantType::Implicit
            | GrantType::RefreshToken
            | GrantType::DeviceCode => Some(true),
            GrantType::ClientCredentials => Some(false),
            GrantType::TokenExchange => None,
        }
    }
}

vocabulary! {
    /// Response types of the authorization endpoint (normalised: `token id_token` is
    /// `id_token token`; parse with [`ResponseType::parse_any_order`]).
    pub enum ResponseType ("response_type") {
        Code = "code",
        IdToken = "id_token",
        IdTokenToken = "id_token token",
    }
}

impl ResponseType {
    /// Parses a response type whose space-separated words may come in any order.
    pub fn parse_any_order(s: &str) -> Result<ResponseType, UnknownValue> {
        let mut parts: Vec<&str> = s.split_whitespace().collect();
        parts.sort_unstable();
        parts
            .join(" ")
            .parse()
            .map_err(|e: UnknownValue| UnknownValue {
                value: s.to_string(),
                ..e
            })
    }

    /// The grant type an app needs to be registered for to use this response type.
    pub const fn grant(self) -> GrantType {
        match self {
            ResponseType::Code => GrantType::AuthorizationCode,
            ResponseType::IdToken | ResponseType::IdTokenToken => GrantType::Implicit,
        }
    }

    /// The response mode used when the request names none (OAuth 2.0 Multiple Response Types
    /// §5: tokens never travel in a query string).
    pub const fn default_mode(self) -> ResponseMode {
        match self {
            ResponseType::Code => ResponseMode::Query,
            ResponseType::IdToken | ResponseType::IdTokenToken => ResponseMode::Fragment,
        }
    }
}

vocabulary! {
    /// How the authorization endpoint's answer travels back to the app.
    pub enum ResponseMode ("response_mode") {
        Query = "query",
        Fragment = "fragment",
        FormPost = "form_post",
    }
}

vocabulary! {
    /// PKCE code challenge methods (RFC 7636). `plain` is known and refused.
    pub enum PkceMethod ("code_challenge_method") {
        S256 = "S256",
    }
}

vocabulary! {
    /// How a client authenticates at the token, revocation and introspection endpoints.
    pub enum AuthMethod ("token_endpoint_auth_method") {
        ClientSecretBasic = "client_secret_basic",
        ClientSecretPost = "client_secret_post",
        /// A JWT signed with a key whose public half the app registered (RFC 7523).
        PrivateKeyJwt = "private_key_jwt",
        /// Public apps: just `client_id`.
        None = "none",
    }
}

impl AuthMethod {
    /// Whether the method proves the app holds something (a secret or a private key):
    /// confidential apps use these, and introspection accepts only those.
    pub const fn is_confidential(self) -> bool {
        match self {
            AuthMethod::ClientSecretBasic
            | AuthMethod::ClientSecretPost
            | AuthMethod::PrivateKeyJwt => true,
            AuthMethod::None => false,
        }
    }
}

vocabulary! {
    /// `prompt` values (OIDC Core §3.1.2.1).
    pub enum Prompt ("prompt") {
        None = "none",
        Login = "login",
        Consent = "consent",
        /// Accepted and ignored: there is one account per browser session.
        SelectAccount = "select_account",
    }
}

vocabulary! {
    /// Signature algorithms of id_tokens. RS256 is what OpenID Connect requires every provider
    /// to offer and what apps that register no `id_token_signed_response_alg` expect; ES256 is
    /// smaller and faster, for operators who know their apps accept it.
    pub enum SigningAlg ("signing algorithm") {
        Rs256 = "RS256",
        Es256 = "ES256",
    }
}

impl SigningAlg {
    /// The algorithm of new keys when the configuration names none: RS256, because OIDC
    /// Discovery makes it the one algorithm every relying party must accept, and apps that
    /// register no `id_token_signed_response_alg` (Dedicated DingTalk, the WordPress plugin)
    /// expect it.
    pub const DEFAULT: SigningAlg = SigningAlg::Rs256;

    /// The same algorithm in jsonwebtoken's terms (verification).
    pub const fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_values() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>(), Ok(*g));
        }
        let e = "password".parse::<GrantType>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "grant type `password` is not supported: use authorization_code, implicit, refresh_token, client_credentials, urn:ietf:params:oauth:grant-type:device_code or urn:ietf:params:oauth:grant-type:token-exchange"
        );
        assert_eq!(
            ResponseType::parse_any_order("token id_token"),
            Ok(ResponseType::IdTokenToken)
        );
        let e = ResponseType::parse_any_order("code token").unwrap_err();
        assert_eq!(e.value, "code token");
        assert_eq!(
            expected_list(&e.expected),
            "code, id_token or `id_token token`"
        );
        assert_eq!(
            serde_json::to_value(SigningAlg::Es256).ok(),
            Some(serde_json::json!("ES256"))
        );
        assert!(serde_json::from_value::<SigningAlg>(serde_json::json!("none")).is_err());
    }
}
