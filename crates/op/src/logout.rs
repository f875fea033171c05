//! RP-Initiated Logout 1.0 (`/oidc/session/end`) as one decision: which app and redirect the
//! request names ([`Provider::end_session`] checks those), whether the browser's session may be
//! ended without asking, whether a confirmation is genuine, and ending the session. The server's
//! handler only parses the request and shows what [`Logout`] says.

use crate::{OpResult, Provider};
use std::collections::HashMap;
use tessera_core::session::Session;

/// A logout request as the handler read it: its single-valued parameters (query or form), the
/// browser's session, whether it was a form submission, and the browser's CSRF cookie.
pub struct LogoutRequest<'a> {
    pub params: &'a HashMap<String, String>,
    pub session: Option<&'a Session>,
    /// The "Sign out?" form was posted (a confirmation can only come this way).
    pub posted: bool,
    pub csrf_cookie: Option<&'a str>,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logout {
    /// Ask the user first: a CSRF-bound "Sign out?" form carrying `fields` back here. `redirect`
    /// is where the app would have the browser go afterwards (its origin may receive the form's
    /// redirect).
    Confirm {
        redirect: Option<String>,
        fields: Vec<(String, String)>,
    },
    /// A confirmation whose CSRF token is missing or not this browser's: nothing was ended.
    CsrfRefused,
    /// The session (if any) is ended: go to `redirect`, or show "signed out" when it is `None`.
    /// `frontchannel` holds the front-channel logout URLs (OIDC Front-Channel Logout 1.0) of
    /// the apps this session signed in to, with `iss` and `sid` where the app asked for them:
    /// the signed-out page loads each in an iframe before going on.
    Done {
        redirect: Option<String>,
        frontchannel: Vec<String>,
    },
}

/// The parameters the "Sign out?" form carries back, in this order.
const CARRIED: [&str; 4] = [
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
];

impl Provider {
    /// Decides an RP-initiated logout and, when it is decided, ends the browser's session.
    ///
    /// Unless the app names this very session (its id_token's `sid`), anyone could link here,
    /// with no hint or with an id_token of their own: the user is asked first with a
    /// CSRF-bound form, as RP-Initiated Logout 1.0 §2 requires.
    pub async fn logout(&self, r: LogoutRequest<'_>) -> OpResult<Logout> {
        let get = |k: &str| r.params.get(k).map(String::as_str);
        let target = self
            .end_session(
                get("client_id"),
                get("id_token_hint"),
                get("post_logout_redirect_uri"),
                get("state"),
            )
            .await?;
        let Some(s) = r.session else {
            return Ok(Logout::Done {
                redirect: target.redirect,
                frontchannel: vec![],
            });
        };
        let hinted = target.hinted_sid.as_deref() == Some(s.id.to_string().as_str());
        let confirming = r.posted && get("confirm").is_some();
        let confirmed = confirming
            && get("confirm") == Some("yes")
            && tessera_core::crypto::csrf_matches(
                get("csrf_token").unwrap_or_default(),
                r.csrf_cookie.unwrap_or_default(),
            );
        if confirming && !confirmed {
            return Ok(Logout::CsrfRefused);
        }
        if !hinted && !confirmed {
            let fields = CARRIED
                .iter()
                .filter_map(|k| get(k).map(|v| (k.to_string(), v.to_string())))
                .collect();
            return Ok(Logout::Confirm {
                redirect: target.redirect,
                fields,
            });
        }
        // Read before the session ends: ending it turns its app links into notices.
        let frontchannel = self.frontchannel_uris(s).await?;
        self.store.set_session_active(s.id, false).await?;
        Ok(Logout::Done {
            redirect: target.redirect,
            frontchannel,
        })
    }

    /// The front-channel logout URLs of the apps `session` signed in to, in sign-in order:
    /// only apps of this session (never one the user did not use), each with `iss` and `sid`
    /// when it registered `frontchannel_logout_session_required`.
    pub async fn frontchannel_uris(&self, session: &Session) -> OpResult<Vec<String>> {
        let mut out = vec![];
        for (client_id, sid) in self.store.op_session_apps(session.id).await? {
            let Some(client) = self.client(&client_id).await? else {
                continue;
            };
            let Some(uri) = &client.frontchannel_logout_uri else {
                continue;
            };
            let Ok(mut url) = url::Url::parse(uri) else {
                continue;
            };
            if client.frontchannel_logout_session_required {
                url.query_pairs_mut()
                    .append_pair("iss", &self.issuer)
                    .append_pair("sid", &sid);
            }
            out.push(url.to_string());
        }
        Ok(out)
    }
}
