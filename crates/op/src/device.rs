//! The device authorization grant (RFC 8628), for TVs, consoles and CLIs that cannot show a
//! sign-in page: the device asks `/oidc/device/auth` for a device code and a short user code,
//! shows the user code and `verification_uri`, and polls the token endpoint; the user opens
//! `/ui/device` on a phone or computer, enters the code, signs in and confirms.
//!
//! The approval reuses the authorization endpoint's stored requests ([`AuthParams`] with
//! `device`), so sign-in, `access: assigned` rules, per-app subjects and consent apply exactly
//! as for a redirect. The confirmation is always asked, even for first-party apps: a user code
//! may have been sent by an attacker waiting on their own device (§5.4). User codes are 8
//! letters from a 20-consonant alphabet (about 34.5 bits, §6.1), valid 10 minutes, and the page
//! that takes them is rate-limited per client address by the server.

use crate::authorize::{AuthParams, Authorize, PageReason, page};
use crate::client::{Client, ClientAuth};
use crate::token::TokenResponse;
use crate::vocab::{GrantType, Prompt, ResponseMode, ResponseType};
use crate::{ErrorCode, OpError, OpResult, Provider, millis, now_ms};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::crypto;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_store::device::DeviceGrantRow;
use uuid::Uuid;

/// RFC 8628 §6.1's base-20 alphabet: no vowels (no words), no look-alikes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;
/// How long the user has to approve (RFC 8628 `expires_in`).
pub const DEVICE_CODE_LIFETIME_SECS: i64 = 600;
/// The polling interval a device starts with (§3.2 default).
pub const POLL_INTERVAL_SECS: i64 = 5;

/// The device authorization response (§3.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A user code as people type it (`bcdf-ghjk`, `BCDF GHJK`) in its stored form, or `None`
/// when it cannot be one.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX`, as shown.
pub fn display_user_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

fn new_user_code() -> String {
    let bytes = crypto::random_bytes::<USER_CODE_LEN>();
    // 256 is not a multiple of 20: bytes at or above 240 would favour the first letters, so
    // each position draws again from fresh bytes until it is below.
    bytes
        .iter()
        .map(|b| {
            let mut v = *b;
            while v >= 240 {
                v = crypto::random_bytes::<1>()[0];
            }
            ALPHABET[(v % 20) as usize] as char
        })
        .collect()
}

fn user_code_hash(code: &str) -> String {
    crypto::token_hash(&format!("device-user-code:{code}"))
}

fn unknown_code() -> Authorize {
    page(
        PageReason::UserCode,
        None,
        "This code is not valid: it may be mistyped, expired (codes last 10 minutes) or used already. Check the code on your device, or start again there.".into(),
    )
}

impl Provider {
    /// `POST /oidc/device/auth` (§3.1): a new device code and user code for an authenticated
    /// app registered for the device grant.
    pub async fn device_authorization(
        &self,
        auth: &ClientAuth,
        form: &HashMap<String, String>,
    ) -> OpResult<DeviceAuthorization> {
        let client = self.authenticate(auth).await?;
        if !client.allows_grant(GrantType::DeviceCode) {
            return Err(OpError::unauthorized_client(format!(
                "The app “{}” is not registered for the device grant: add `{}` to its grant_types.",
                client.client_name,
                GrantType::DeviceCode.as_str()
            )));
        }
        let scope: Vec<String> = match form.get("scope").filter(|s| !s.trim().is_empty()) {
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
            None if client.has_scope("openid") => vec!["openid".into()],
            None => vec![],
        };
        if let Some(x) = scope.iter().find(|s| !client.has_scope(s)) {
            return Err(OpError::invalid_scope(format!(
                "Scope `{x}` is not allowed for this app (allowed: {}).",
                client.scope
            )));
        }
        let mut resource = vec![];
        if let Some(r) = form.get("resource").filter(|r| !r.is_empty()) {
            resource.push(self.target_api(&client, r).await?.identifier);
        }
        let device_code = crypto::random_token();
        let now = now_ms();
        let expires_at = now + DEVICE_CODE_LIFETIME_SECS * 1000;
        // A user code is short: a collision with a live one is possible, so draw again.
        for _ in 0..5 {
            let user_code = new_user_code();
            let row = DeviceGrantRow {
                device_hash: crypto::token_hash(&device_code),
                user_code_hash: user_code_hash(&user_code),
                client_id: client.client_id.clone(),
                params: json!({"scope": scope, "resource": resource}),
                status: "pending".into(),
                code_hash: None,
                interval_secs: POLL_INTERVAL_SECS,
                last_poll_at: 0,
                created_at: now,
                expires_at,
            };
            match self.store.op_insert_device_grant(&row).await {
                Ok(()) => {
                    let shown = display_user_code(&user_code);
                    let verification_uri = self
                        .settings
                        .serve
                        .public_base_url
                        .join("ui/device")
                        .map(|u| u.to_string())
                        .unwrap_or_default();
                    return Ok(DeviceAuthorization {
                        device_code,
                        verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
                        verification_uri,
                        user_code: shown,
                        expires_in: DEVICE_CODE_LIFETIME_SECS,
                        interval: POLL_INTERVAL_SECS,
                    });
                }
                Err(e) if e.kind == tessera_core::ErrorKind::Conflict => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(OpError::server_error(
            "could not draw a free user code; try again",
        ))
    }

    /// The user entered `user_code` at `/ui/device`: the approval goes through sign-in,
    /// access rules and consent like an authorization request.
    pub async fn device_start(
        &self,
        user_code: &str,
        session: Option<&Session>,
        ui_locales: Option<String>,
    ) -> OpResult<Authorize> {
        let Some(code) = normalize_user_code(user_code) else {
            return Ok(unknown_code());
        };
        let hash = user_code_hash(&code);
        let Some(g) = self.store.op_device_by_user_code(&hash).await? else {
            return Ok(unknown_code());
        };
        let now = now_ms();
        if g.status != "pending" || g.expires_at < now {
            return Ok(unknown_code());
        }
        let strings = |k: &str| -> Vec<String> {
            g.params
                .get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let p = AuthParams {
            client_id: g.client_id.clone(),
            redirect_uri: String::new(),
            response_type: ResponseType::Code,
            response_mode: ResponseMode::Query,
            scope: strings("scope"),
            state: None,
            nonce: None,
            code_challenge: None,
            prompt: vec![Prompt::Consent],
            max_age: None,
            login_hint: None,
            ui_locales,
            resource: strings("resource"),
            device: Some(hash),
            acr_values: None,
        };
        let id = Uuid::new_v4();
        let value = serde_json::to_value(&p).map_err(|e| OpError::server_error(e.to_string()))?;
        // The stored request lives no longer than the device code.
        let until = (now + millis(self.op().request_lifespan)).min(g.expires_at);
        self.store
            .op_insert_request(id, &p.client_id, &value, now, until)
            .await?;
        self.proceed(id, p, now, session).await
    }

    /// The user confirmed: an authorization code for the device, kept until the device code
    /// expires, and the grant marked approved (once).
    pub(crate) async fn approve_device(
        &self,
        client: &Client,
        identity: &Identity,
        session: &Session,
        p: &AuthParams,
        user_code_hash: &str,
    ) -> OpResult<Authorize> {
        let Some(g) = self.store.op_device_by_user_code(user_code_hash).await? else {
            return Ok(unknown_code());
        };
        let now = now_ms();
        let sub = self
            .subject_for(client, identity)
            .await?
            .map_err(|m| OpError::new(ErrorCode::AccessDenied, m.0))?;
        let remaining = std::time::Duration::from_millis(
            u64::try_from((g.expires_at - now).max(1000)).unwrap_or(1000),
        );
        let (_, code_hash) = self
            .issue_code_for(client, identity, session, p, &sub, remaining)
            .await?;
        if !self
            .store
            .op_device_decide(user_code_hash, true, Some(&code_hash), now)
            .await?
        {
            return Ok(unknown_code());
        }
        self.remember_session_app(client, session, &sub).await?;
        Ok(Authorize::DeviceDone {
            app: client.client_name.clone(),
            approved: true,
        })
    }

    /// The user declined on the consent page: the device hears `access_denied`.
    pub(crate) async fn deny_device(
        &self,
        client_id: &str,
        user_code_hash: &str,
    ) -> OpResult<Authorize> {
        self.store
            .op_device_decide(user_code_hash, false, None, now_ms())
            .await?;
        let app = self
            .client(client_id)
            .await?
            .map(|c| c.client_name)
            .unwrap_or_default();
        Ok(Authorize::DeviceDone {
            app,
            approved: false,
        })
    }

    /// The token endpoint's device grant (§3.4, §3.5).
    pub(crate) async fn device_token(
        &self,
        client: &Client,
        form: &HashMap<String, String>,
        jkt: Option<&str>,
    ) -> OpResult<TokenResponse> {
        let code = form
            .get("device_code")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OpError::invalid_request("The `device_code` parameter is missing."))?;
        let hash = crypto::token_hash(code);
        let g = self
            .store
            .op_device_by_device_code(&hash)
            .await?
            .filter(|g| g.client_id == client.client_id)
            .ok_or_else(|| OpError::invalid_grant("The device code is not valid."))?;
        let now = now_ms();
        match g.status.as_str() {
            "denied" => {
                return Err(OpError::new(
                    ErrorCode::AccessDenied,
                    "The user declined to sign in on this device.",
                ));
            }
            "used" => {
                return Err(OpError::invalid_grant(
                    "The device code was redeemed already.",
                ));
            }
            _ if g.expires_at < now => {
                return Err(OpError::new(
                    ErrorCode::ExpiredToken,
                    "The device code expired before the user approved it: start again.",
                ));
            }
            "pending" => {
                return Err(if self.store.op_device_poll(&hash, now).await? {
                    OpError::new(
                        ErrorCode::AuthorizationPending,
                        "The user has not approved the sign-in yet.",
                    )
                } else {
                    OpError::new(
                        ErrorCode::SlowDown,
                        format!(
                            "Polling faster than every {} s: wait 5 s longer between requests.",
                            g.interval_secs
                        ),
                    )
                });
            }
            _ => {}
        }
        let code_hash = self
            .store
            .op_device_take(&hash)
            .await?
            .ok_or_else(|| OpError::invalid_grant("The device code was redeemed already."))?;
        let row = match self.store.op_take_code(&code_hash).await? {
            tessera_store::op::Taken::Fresh(row) => row,
            _ => {
                return Err(OpError::invalid_grant(
                    "The device code was redeemed already.",
                ));
            }
        };
        self.tokens_for_code(client, &row, form, jkt).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_and_normalise_as_typed() {
        for _ in 0..200 {
            let c = new_user_code();
            assert_eq!(c.len(), 8);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert_eq!(normalize_user_code(&display_user_code(&c)), Some(c.clone()));
            assert_eq!(
                normalize_user_code(&display_user_code(&c).to_lowercase()),
                Some(c)
            );
        }
        assert_eq!(
            normalize_user_code("BCDF GHJK").as_deref(),
            Some("BCDFGHJK")
        );
        for bad in [
            "",
            "BCDFGHJ",
            "BCDFGHJKL",
            "ABCDEFGH",
            "BCDF-GHJ1",
            "БCDFGHJK",
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }
}
