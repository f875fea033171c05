//! What the transport pages (the OpenID Provider's `form_post` answer, the social fragment
//! bridge) share: they are not hosted UI pages, so they build their few lines of markup
//! themselves, and each allows exactly its one inline script by hash rather than by
//! `'unsafe-inline'`, so an injected script could not run even if escaping failed.

use base64::Engine as _;

/// A CSP hash source for `script`: `'sha256-<base64 of the SHA-256>'` (core hashes to hex).
pub(crate) fn csp_hash(script: &str) -> String {
    let hex = tessera_core::crypto::token_hash(script);
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Escapes text for an HTML element or a double- or single-quoted attribute.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_hash_is_base64_of_the_sha256() {
        // SHA-256 of the empty string, as CSP writes it.
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }

    #[test]
    fn escaping_covers_elements_and_both_quotes() {
        assert_eq!(
            esc("<a href='x' title=\"&\">"),
            "&lt;a href=&#39;x&#39; title=&quot;&amp;&quot;&gt;"
        );
    }
}
