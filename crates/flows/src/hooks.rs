//! Kratos's self-service hooks: `web_hook` (with `response.ignore`, `response.parse` and
//! `can_interrupt`) and `revoke_active_sessions`; the `session` hook is the registration
//! code's `session_after_*` switch.
//!
//! When hooks run, and what that means for "nothing half-written":
//! - `before` hooks run when a flow is created; a refusal means no flow is stored.
//! - A registration's or settings change's blocking hooks (`parse` or `can_interrupt`) run
//!   after the submission was validated and before anything is written; a refusal shows the
//!   hook's messages on the flow, which stays usable, and a failing hook fails the submission
//!   with nothing written. Their other web hooks run after the write, in the background, with
//!   bounded retries: a failure can no longer undo the write, so it is logged, not shown.
//! - A login's web hooks run before the session is issued (as in Kratos), so a refusal issues
//!   nothing; `revoke_active_sessions` runs after the new session exists.
//! - A verification's or recovery's blocking hooks run once the code or link proved right
//!   and before anything is written (the address stays unverified, no session is issued, the
//!   code still holds); their other web hooks run in the background once the step is written
//!   (verification: the address is verified; recovery: the identity is signed in).
//! - `response.ignore` hooks are always sent in the background.
//!
//! The HTTP request the hook is answering (method, URL, allow-listed headers, cookies) reaches
//! the engine through a task-local ([`scope`], set by the server's edge layer), so no engine
//! signature carries HTTP types. Session, CSRF and continuity cookies are never put in `ctx`.

use crate::engine::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_config::hooks::{HookAction, WebHookSpec};
use tessera_core::flow::Flow;
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_core::text::{MessageId, Text, TextType};
use tessera_core::{Error, ErrorKind};
use tessera_social::request::{Body, Request};

/// Kratos's default `clients.web_hook.header_allowlist`: the request headers a hook sees.
pub const HEADER_ALLOWLIST: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Content-Length",
    "Content-Type",
    "Origin",
    "Priority",
    "Referer",
    "Sec-Ch-Ua",
    "Sec-Ch-Ua-Mobile",
    "Sec-Ch-Ua-Platform",
    "Sec-Fetch-Dest",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Site",
    "Sec-Fetch-User",
    "True-Client-Ip",
    "User-Agent",
];

/// Attempts for a hook sent in the background (the first included).
const BACKGROUND_ATTEMPTS: u32 = 3;
/// The wait before the first retry; it doubles for each further one.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// Cookies that are credentials or bind a flow; they never go into `ctx.request_cookies`.
const PRIVATE_COOKIES: &[&str] = &["tessera_csrf_token", "tessera_continuity"];

/// The HTTP request a flow step is answering, as hooks see it (`ctx.request_*`).
#[derive(Debug, Clone, Default)]
pub struct HookRequest {
    pub method: String,
    /// The full public URL of the request.
    pub url: String,
    /// Header name (canonical form) → values; only the allow-listed headers.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Every cookie by name (session and flow cookies are dropped when `ctx` is built).
    pub cookies: BTreeMap<String, String>,
}

impl HookRequest {
    /// Keeps only the allow-listed headers, in Go's canonical form (`User-Agent`), as Kratos.
    pub fn allow_header(&mut self, name: &str, value: &str) {
        if let Some(canonical) = HEADER_ALLOWLIST
            .iter()
            .find(|a| a.eq_ignore_ascii_case(name))
        {
            self.headers
                .entry((*canonical).to_string())
                .or_default()
                .push(value.to_string());
        }
    }
}

tokio::task_local! {
    static REQUEST: Arc<HookRequest>;
}

/// Runs `f` with `request` as the request hooks see.
pub async fn scope<F: std::future::Future>(request: HookRequest, f: F) -> F::Output {
    REQUEST.scope(Arc::new(request), f).await
}

pub(crate) fn current_request() -> Arc<HookRequest> {
    REQUEST.try_with(Arc::clone).unwrap_or_default()
}

/// A blocking hook said no (`can_interrupt`/`parse` and a 4xx with Kratos's messages), or its
/// answer changed traits that the schema refuses: messages by node name (`None`: the flow).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub messages: Vec<(Option<String>, Text)>,
}

impl Refusal {
    /// Puts the messages on the flow's nodes (or the flow when no node has that name).
    pub fn apply(&self, flow: &mut Flow) {
        for (node, text) in &self.messages {
            flow.ui.add_message(node.as_deref(), text.clone());
        }
    }
}

/// What running a stage's hooks led to.
#[derive(Debug)]
pub enum HookOutcome {
    Passed,
    Refused(Refusal),
}

/// Kratos's interrupt answer: `{"messages":[{"instance_ptr":"#/traits/email","messages":[…]}]}`.
#[derive(serde::Deserialize)]
struct InterruptAnswer {
    messages: Vec<InterruptGroup>,
}

#[derive(serde::Deserialize)]
struct InterruptGroup {
    #[serde(default)]
    instance_ptr: String,
    messages: Vec<InterruptMessage>,
}

#[derive(serde::Deserialize)]
struct InterruptMessage {
    id: u32,
    text: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    context: Value,
}

/// `#/traits/email` → `traits.email`; `#`, `#/` and empty → the flow itself.
fn node_of(instance_ptr: &str) -> Option<String> {
    let p = instance_ptr
        .trim()
        .trim_start_matches('#')
        .trim_start_matches('/');
    (!p.is_empty()).then(|| {
        p.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".")
    })
}

fn parse_refusal(body: &[u8]) -> Option<Refusal> {
    let answer: InterruptAnswer = serde_json::from_slice(body).ok()?;
    let mut messages = Vec::new();
    for g in answer.messages {
        let node = node_of(&g.instance_ptr);
        for m in g.messages {
            messages.push((
                node.clone(),
                Text {
                    id: MessageId(m.id),
                    text: m.text,
                    kind: if m.kind == "error" {
                        TextType::Error
                    } else {
                        TextType::Info
                    },
                    context: m.context,
                },
            ));
        }
    }
    (!messages.is_empty()).then_some(Refusal { messages })
}

/// What a parsing hook may change (`{"identity": {…}}`); absent keys change nothing.
#[derive(serde::Deserialize, Default)]
struct ParseAnswer {
    #[serde(default)]
    identity: Option<IdentityChange>,
}

#[derive(serde::Deserialize, Default)]
struct IdentityChange {
    #[serde(default)]
    traits: Option<Value>,
    #[serde(default)]
    metadata_public: Option<Value>,
    #[serde(default)]
    metadata_admin: Option<Value>,
}

fn unavailable(hook: &WebHookSpec, why: impl std::fmt::Display) -> Error {
    tracing::error!(hook = %hook.request.key, id = %hook.id, error = %why, "web hook failed");
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "A third-party upstream service responded improperly ({why}). Nothing was saved; please try again later."
        ),
    )
}

impl Engine {
    /// Builds Kratos's `ctx` for a hook: the flow, the request, and the identity and session
    /// when the stage has them. Credentials (password hashes, upstream tokens) are never in
    /// it, and neither are session tokens.
    pub(crate) fn hook_ctx(
        &self,
        flow: &Flow,
        identity: Option<&Identity>,
        session: Option<&Session>,
    ) -> Value {
        let req = current_request();
        let session_cookie = &self.settings.session.cookie.name;
        let cookies: BTreeMap<&String, &String> = req
            .cookies
            .iter()
            .filter(|(n, _)| *n != session_cookie && !PRIVATE_COOKIES.contains(&n.as_str()))
            .collect();
        let mut ctx = json!({
            "flow": flow,
            "request_headers": req.headers,
            "request_method": req.method,
            "request_url": req.url,
            "request_cookies": cookies,
        });
        if let Some(i) = identity {
            let mut i = i.clone();
            i.credentials = None;
            if i.schema_url.is_empty() {
                i.schema_url = self.schema_url(&i.schema_id);
            }
            ctx["identity"] = json!(i);
        }
        if let Some(s) = session {
            ctx["session"] = json!(s);
        }
        ctx
    }

    fn compiled(&self, hook: &WebHookSpec) -> Result<Arc<Request>, Error> {
        self.social
            .request(&hook.request.key)
            .cloned()
            .ok_or_else(|| {
                Error::internal(format!(
                    "the web hook `{}` was not prepared at start",
                    hook.request.key
                ))
            })
    }

    /// Sends a hook in the background with bounded retries (5xx and transport errors are
    /// retried; the answer is not read). Failures are logged without header values.
    pub(crate) fn spawn_web_hook(&self, hook: &Arc<WebHookSpec>, ctx: Value) {
        let request = match self.compiled(hook) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "web hook skipped");
                return;
            }
        };
        let pool = self.social.pool().clone();
        let http = self.social.http().clone();
        let hook = hook.clone();
        tokio::spawn(async move {
            let body = match request.render(&pool, &ctx).await {
                Ok(Some(b)) => b,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(hook = %hook.request.key, error = %e, "web hook not sent");
                    return;
                }
            };
            let mut wait = RETRY_BACKOFF;
            for attempt in 1..=BACKGROUND_ATTEMPTS {
                let result = request.send(&http, body.clone()).await;
                let retry = match &result {
                    Ok(a) if a.status < 500 => {
                        tracing::info!(hook = %hook.request.key, status = a.status, attempt, "web hook delivered");
                        return;
                    }
                    Ok(a) => format!("HTTP {}", a.status),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(hook = %hook.request.key, attempt, error = %retry, "web hook failed; its answer is ignored");
                if attempt < BACKGROUND_ATTEMPTS {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        });
    }

    /// Sends a hook and waits for it. With `identity`, a `parse` hook's 200 answer changes it
    /// (traits re-validated by the caller). A 4xx answer of a blocking hook with Kratos's
    /// messages is a refusal; anything else that is not a success fails with nothing saved.
    pub(crate) async fn call_web_hook(
        &self,
        hook: &Arc<WebHookSpec>,
        ctx: &Value,
        identity: Option<&mut Identity>,
    ) -> Result<HookOutcome, Error> {
        let request = self.compiled(hook)?;
        let body: Body = match request.render(self.social.pool(), ctx).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(HookOutcome::Passed),
            Err(e) => return Err(unavailable(hook, e)),
        };
        let answer = request
            .send(self.social.http(), body)
            .await
            .map_err(|e| unavailable(hook, e))?;
        if answer.status >= 400 {
            if hook.blocks()
                && (400..500).contains(&answer.status)
                && let Some(refusal) = parse_refusal(&answer.body)
            {
                tracing::info!(hook = %hook.request.key, status = answer.status, "web hook refused the flow");
                return Ok(HookOutcome::Refused(refusal));
            }
            let why = if hook.blocks() && (400..500).contains(&answer.status) {
                format!(
                    "the web hook `{}` answered HTTP {} without Kratos's {{\"messages\": [{{\"instance_ptr\": …, \"messages\": [{{\"id\", \"text\", \"type\"}}]}}]}} body",
                    hook.request.key, answer.status
                )
            } else {
                format!(
                    "the web hook `{}` answered HTTP {}",
                    hook.request.key, answer.status
                )
            };
            return Err(unavailable(hook, why));
        }
        if hook.parse
            && answer.status == 200
            && let Some(identity) = identity
        {
            let parsed: ParseAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
                unavailable(
                    hook,
                    format!(
                        "the web hook `{}` answered 200 with a body that is not JSON of the shape {{\"identity\": {{\"traits\": …}}}} ({e})",
                        hook.request.key
                    ),
                )
            })?;
            if let Some(change) = parsed.identity {
                if let Some(t) = change.traits {
                    if !t.is_object() {
                        return Err(unavailable(
                            hook,
                            format!(
                                "the web hook `{}` answered identity.traits that are not an object",
                                hook.request.key
                            ),
                        ));
                    }
                    *identity = self.rebuild_with_traits(identity, t)?;
                }
                if let Some(m) = change.metadata_public {
                    identity.metadata_public = m;
                }
                if let Some(m) = change.metadata_admin {
                    identity.metadata_admin = m;
                }
            }
        }
        Ok(HookOutcome::Passed)
    }

    /// Runs a `before` stage when a flow is created: waits for every hook but `ignore` ones.
    /// A refusal becomes a 400 error naming the hook's messages (there is no flow to show them
    /// on yet).
    pub(crate) async fn run_before_hooks(
        &self,
        hooks: &[HookAction],
        flow: &Flow,
        session: Option<&Session>,
    ) -> Result<(), Error> {
        if hooks.is_empty() {
            return Ok(());
        }
        let ctx = self.hook_ctx(flow, None, session);
        for h in hooks {
            let HookAction::WebHook(w) = h else { continue };
            if w.ignore {
                self.spawn_web_hook(w, ctx.clone());
                continue;
            }
            if let HookOutcome::Refused(r) = self.call_web_hook(w, &ctx, None).await? {
                let texts: Vec<&str> = r.messages.iter().map(|(_, t)| t.text.as_str()).collect();
                return Err(Error::bad_request(texts.join(" "))
                    .with_details(json!({ "messages": r.messages.iter().map(|(n, t)| json!({"node": n, "message": t})).collect::<Vec<_>>() })));
            }
        }
        Ok(())
    }

    /// Runs the blocking hooks before a write: `identity` may be changed by `parse` hooks, and
    /// is checked against its schema afterwards (a refusal when the schema says no).
    pub(crate) async fn run_pre_persist(
        &self,
        hooks: impl Iterator<Item = &Arc<WebHookSpec>>,
        flow: &Flow,
        identity: &mut Identity,
        session: Option<&Session>,
    ) -> Result<HookOutcome, Error> {
        let mut changed = false;
        for w in hooks {
            let ctx = self.hook_ctx(flow, Some(identity), session);
            let before = (identity.traits.clone(), identity.metadata_public.clone());
            match self.call_web_hook(w, &ctx, Some(identity)).await? {
                HookOutcome::Passed => {}
                refused => return Ok(refused),
            }
            changed |= before != (identity.traits.clone(), identity.metadata_public.clone());
        }
        if changed {
            let schema = self.schemas.get(&identity.schema_id)?;
            let problems = schema.validate_traits(&identity.traits);
            if !problems.is_empty() {
                tracing::warn!("a web hook's traits do not match the identity schema");
                return Ok(HookOutcome::Refused(Refusal {
                    messages: problems.into_iter().map(|e| (e.field, e.message)).collect(),
                }));
            }
        }
        Ok(HookOutcome::Passed)
    }

    /// Runs what comes after a write: web hooks in the background (their failure cannot undo
    /// the write), `revoke_active_sessions` now (keeping `keep`).
    pub(crate) async fn run_post_persist(
        &self,
        hooks: &[HookAction],
        flow: &Flow,
        identity: &Identity,
        session: Option<&Session>,
    ) -> Result<(), Error> {
        for h in hooks {
            match h {
                HookAction::WebHook(w) if !w.blocks() => {
                    self.spawn_web_hook(w, self.hook_ctx(flow, Some(identity), session));
                }
                HookAction::RevokeActiveSessions => {
                    let n = self
                        .store
                        .revoke_identity_sessions(identity.id, session.map(|s| s.id))
                        .await?;
                    tracing::info!(identity = %identity.id, revoked = n, "revoke_active_sessions hook");
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A login's web hooks, before the session is issued: every hook that is not `ignore` is
    /// waited for, and a refusal or failure means no session.
    pub(crate) async fn run_login_hooks(
        &self,
        hooks: &[HookAction],
        flow: &Flow,
        identity: &Identity,
    ) -> Result<HookOutcome, Error> {
        for h in hooks {
            let HookAction::WebHook(w) = h else { continue };
            let ctx = self.hook_ctx(flow, Some(identity), None);
            if w.ignore {
                self.spawn_web_hook(w, ctx);
                continue;
            }
            if let HookOutcome::Refused(r) = self.call_web_hook(w, &ctx, None).await? {
                return Ok(HookOutcome::Refused(r));
            }
        }
        Ok(HookOutcome::Passed)
    }

    /// The blocking web hooks (`can_interrupt` or `parse`) of a stage whose step writes
    /// nothing of the identity (verification, recovery), waited for in order before the step
    /// is written: a refusal or a failure means nothing is written. Such a stage has no
    /// identity to save, so what a `parse` hook answers changes nothing (Kratos's hooks there
    /// change an identity that is never saved either). Other hooks are left to
    /// [`Self::spawn_after_hooks`].
    pub(crate) async fn run_blocking_hooks(
        &self,
        hooks: &[HookAction],
        flow: &Flow,
        identity: &Identity,
    ) -> Result<HookOutcome, Error> {
        let ctx = self.hook_ctx(flow, Some(identity), None);
        for h in hooks {
            if let HookAction::WebHook(w) = h
                && w.blocks()
                && let HookOutcome::Refused(r) = self.call_web_hook(w, &ctx, None).await?
            {
                return Ok(HookOutcome::Refused(r));
            }
        }
        Ok(HookOutcome::Passed)
    }

    /// Sends a stage's non-blocking web hooks in the background once its step is written:
    /// their failure is logged and retried, and cannot undo the step.
    pub(crate) fn spawn_after_hooks(&self, hooks: &[HookAction], flow: &Flow, identity: &Identity) {
        for h in hooks {
            if let HookAction::WebHook(w) = h
                && !w.blocks()
            {
                self.spawn_web_hook(w, self.hook_ctx(flow, Some(identity), None));
            }
        }
    }

    /// `revoke_active_sessions` after a login: every other session of the identity ends.
    pub(crate) async fn revoke_after_login(
        &self,
        hooks: &[HookAction],
        identity: &Identity,
        session: &Session,
    ) -> Result<(), Error> {
        if hooks.contains(&HookAction::RevokeActiveSessions) {
            let n = self
                .store
                .revoke_identity_sessions(identity.id, Some(session.id))
                .await?;
            tracing::info!(identity = %identity.id, revoked = n, "revoke_active_sessions hook");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_pointers_become_node_names() {
        assert_eq!(node_of("#/traits/email"), Some("traits.email".into()));
        assert_eq!(node_of("#/password"), Some("password".into()));
        assert_eq!(node_of("#/"), None);
        assert_eq!(node_of(""), None);
        assert_eq!(node_of("#/traits/a~1b"), Some("traits.a/b".into()));
    }

    #[test]
    fn kratos_interrupt_answers_parse_and_garbage_does_not() {
        let r = parse_refusal(br##"{"messages":[{"instance_ptr":"#/traits/email","messages":[{"id":123,"text":"no","type":"error","context":{"a":1}}]}]}"##)
            .expect("refusal");
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.messages[0].0.as_deref(), Some("traits.email"));
        assert_eq!(r.messages[0].1.id, MessageId(123));
        assert_eq!(r.messages[0].1.kind, TextType::Error);
        assert!(parse_refusal(b"<html>oops</html>").is_none());
        assert!(parse_refusal(br##"{"messages":[]}"##).is_none());
        assert!(
            parse_refusal(
                br##"{"messages":[{"instance_ptr":"#/","messages":[{"text":"no id"}]}]}"##
            )
            .is_none()
        );
    }

    #[test]
    fn only_allow_listed_headers_are_kept_in_canonical_form() {
        let mut r = HookRequest::default();
        r.allow_header("user-agent", "ua");
        r.allow_header("authorization", "Bearer secret");
        r.allow_header("x-session-token", "tok");
        r.allow_header("cookie", "a=b");
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers["User-Agent"], vec!["ua".to_string()]);
    }
}
