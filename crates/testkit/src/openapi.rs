//! Kratos's published OpenAPI document as an oracle for every JSON answer the end-to-end tests
//! receive (issue 13).
//!
//! Ory's generated SDKs refuse an answer whose field has the wrong type, lacks a required field
//! or carries an enum value their spec does not list; so does this check. [`TestServer`] wraps
//! both listeners' routers in [`layer`], which validates each JSON answer on one of Kratos's
//! paths against the schema the document gives for its method, path template and status, and
//! records every mismatch; the server's `stop` (or its drop) fails the test with them. Paths
//! Kratos does not have (`/oidc/…`, `/ui/…`, `/admin/clients`) and statuses it does not
//! document are not checked.
//!
//! The document is `fixtures/kratos-openapi/api.json`, Kratos's `spec/api.json` verbatim (see
//! the NOTICE there). It is OpenAPI 3.0: schemas are turned into JSON Schema 2020-12 for the
//! `jsonschema` crate by rewriting `nullable: true` into a `null` alternative; `$ref`s to
//! `#/components/schemas/…` resolve against the document's components, kept at the same place.
//!
//! [`TestServer`]: crate::TestServer

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use axum::middleware::Next;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Kratos's `spec/api.json` (commit b86338da, Apache-2.0).
const KRATOS_API_JSON: &str = include_str!("../fixtures/kratos-openapi/api.json");

/// Answers larger than this are not buffered for the check (none of Kratos's are near it).
const MAX_CHECKED_BODY: usize = 16 << 20;

/// An OpenAPI 3.0 document ready to validate answers.
pub struct Spec {
    /// Path templates split into segments (`None` for a `{parameter}`), with their path items.
    paths: Vec<(Vec<Option<String>>, String, Value)>,
    /// `components.schemas`, already converted to JSON Schema.
    components: Value,
    validators: Mutex<HashMap<(String, String, String), Arc<jsonschema::Validator>>>,
}

/// Kratos's document, parsed once per process.
pub fn kratos() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let doc: Value = serde_json::from_str(KRATOS_API_JSON).expect("the fixture is JSON");
        Spec::new(&doc)
    })
}

impl Spec {
    pub fn new(doc: &Value) -> Spec {
        let mut paths = Vec::new();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            let segments = template
                .trim_start_matches('/')
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect();
            paths.push((segments, template.clone(), item.clone()));
        }
        let mut components = doc["components"]["schemas"].clone();
        correct_generated_schemas(&mut components);
        to_json_schema(&mut components);
        Spec {
            paths,
            components,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The path template of `path` (`/admin/identities/{id}` for `/admin/identities/42`), the
    /// one with the fewest parameters when several match.
    pub fn template(&self, path: &str) -> Option<(&str, &Value)> {
        let given: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.paths
            .iter()
            .filter(|(segments, _, _)| {
                segments.len() == given.len()
                    && segments.iter().zip(&given).all(|(s, g)| match s {
                        Some(s) => s == g,
                        None => !g.is_empty(),
                    })
            })
            .min_by_key(|(segments, _, _)| segments.iter().filter(|s| s.is_none()).count())
            .map(|(_, t, item)| (t.as_str(), item))
    }

    /// Whether `path` is one of the document's paths.
    pub fn knows(&self, path: &str) -> bool {
        self.template(path).is_some()
    }

    /// Checks one answer. `Ok` when it matches its schema or the document has none for it (a
    /// path, method or status Kratos does not document, or an answer without a JSON body);
    /// otherwise every mismatch, each with where in the body it is.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), String> {
        let Some((template, item)) = self.template(path) else {
            return Ok(());
        };
        let method = method.to_ascii_lowercase();
        let responses = &item[&method]["responses"];
        let status_key = status.to_string();
        let (key, response) = match responses.get(&status_key) {
            Some(r) => (status_key, r),
            None => match responses.get("default") {
                Some(r) => ("default".to_owned(), r),
                None => return Ok(()),
            },
        };
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return Ok(());
        };
        // Kratos answers a submission whose flow cannot be loaded (no or a malformed `flow`)
        // with its generic error, not the flow its document lists for 400
        // (`WriteFlowError` with no flow forwards the error as herodot JSON).
        let flow_less = status == 400
            && method == "post"
            && template.starts_with("/self-service/")
            && body.get("error").is_some();
        let generic = json!({"$ref": "#/components/schemas/errorGeneric"});
        let (key, schema) = if flow_less {
            ("400, no flow".to_owned(), &generic)
        } else {
            (key, schema)
        };
        let validator = self.validator(template, &method, &key, schema)?;
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("at `{}`: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        let mut shown = body.to_string();
        if shown.len() > 2000 {
            shown.truncate(2000);
            shown.push('…');
        }
        Err(format!(
            "{} {path} → {status} does not match Kratos's OpenAPI schema for {} {template} ({key}):\n  {}\n  body: {shown}",
            method.to_ascii_uppercase(),
            method.to_ascii_uppercase(),
            errors.join("\n  ")
        ))
    }

    fn validator(
        &self,
        template: &str,
        method: &str,
        key: &str,
        schema: &Value,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        let id = (template.to_owned(), method.to_owned(), key.to_owned());
        let mut cache = self.validators.lock().map_err(|e| e.to_string())?;
        if let Some(v) = cache.get(&id) {
            return Ok(v.clone());
        }
        let mut root = schema.clone();
        to_json_schema(&mut root);
        let root = match root {
            // `$ref`s point at `#/components/schemas/…`: the components go where they were.
            Value::Object(mut m) => {
                m.insert("components".into(), json!({"schemas": self.components}));
                Value::Object(m)
            }
            other => other,
        };
        let v = Arc::new(
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .map_err(|e| {
                    format!("the schema of {method} {template} ({key}) does not compile: {e}")
                })?,
        );
        cache.insert(id, v.clone());
        Ok(v)
    }
}

/// Two schemas go-swagger generates differently from what Kratos (and Ory's SDKs, which accept
/// Kratos's answers) send; both are corrected to Kratos's wire form rather than edited in the
/// fixture:
/// - `genericError.details` is a Go `map[string]interface{}` (Kratos puts e.g. `since` on an
///   expired flow's error), generated as an object with `additionalProperties: false`, which no
///   non-empty map passes; any object is allowed.
/// - `errorBrowserLocationChangeRequired.error` is a `*herodot.DefaultError` serialised as the
///   inner `genericError`, generated as a `$ref` to the outer `errorGeneric` wrapper.
fn correct_generated_schemas(schemas: &mut Value) {
    if let Some(details) = schemas.pointer_mut("/genericError/properties/details")
        && let Some(d) = details.as_object_mut()
    {
        d.remove("additionalProperties");
    }
    if let Some(e) = schemas.pointer_mut("/errorBrowserLocationChangeRequired/properties/error") {
        *e = json!({"$ref": "#/components/schemas/genericError"});
    }
}

/// Rewrites OpenAPI 3.0's `nullable: true` (in every nested schema) as JSON Schema does it: a
/// `null` type next to the declared one, or a `null` alternative to a `$ref` or composition.
fn to_json_schema(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(to_json_schema),
        Value::Object(m) => {
            m.values_mut().for_each(to_json_schema);
            discriminated(m);
            if m.get("nullable") == Some(&Value::Bool(true)) {
                m.remove("nullable");
                nullable(m);
            }
        }
        _ => {}
    }
}

/// A `oneOf` with a `discriminator` mapping (node attributes by `node_type`, `continue_with`
/// items by `action`) becomes "the discriminator is one of the mapped values, and the value
/// matching it follows its schema", so a mismatch is reported inside the chosen schema (e.g.
/// `/ui/nodes/1/attributes/autocomplete`) rather than as "not valid under any of oneOf".
fn discriminated(m: &mut Map<String, Value>) {
    let Some(d) = m.get("discriminator") else {
        return;
    };
    let (Some(Value::String(property)), Some(Value::Object(mapping))) =
        (d.get("propertyName").cloned(), d.get("mapping").cloned())
    else {
        return;
    };
    if !m.contains_key("oneOf") {
        return;
    }
    m.remove("oneOf");
    m.remove("discriminator");
    let values: Vec<&String> = mapping.keys().collect();
    let mut all = vec![json!({
        "required": [property],
        "properties": {property.clone(): {"enum": values}},
    })];
    for (value, target) in &mapping {
        all.push(json!({
            "if": {"properties": {property.clone(): {"const": value}}, "required": [property]},
            "then": {"$ref": target},
        }));
    }
    m.insert("allOf".into(), Value::Array(all));
}

fn nullable(m: &mut Map<String, Value>) {
    if let Some(Value::String(t)) = m.get("type").cloned() {
        m.insert("type".into(), json!([t, "null"]));
        if let Some(Value::Array(e)) = m.get_mut("enum") {
            e.push(Value::Null);
        }
    } else {
        let inner = std::mem::take(m);
        m.insert(
            "anyOf".into(),
            json!([Value::Object(inner), {"type": "null"}]),
        );
    }
}

/// The mismatches [`layer`] found, shared between the server's middleware and its test.
#[derive(Clone, Default)]
pub struct Violations(Arc<Mutex<Vec<String>>>);

impl Violations {
    pub fn push(&self, v: String) {
        if let Ok(mut list) = self.0.lock() {
            list.push(v);
        }
    }

    /// Takes what was found so far.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Middleware (`axum::middleware::from_fn_with_state`) that checks every JSON answer on one of
/// Kratos's paths against [`kratos`] and records mismatches; the answer itself passes through
/// unchanged.
pub async fn layer(State(found): State<Violations>, req: Request, next: Next) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let spec = kratos();
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !is_json || !spec.knows(&path) {
        return resp;
    }
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_CHECKED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            found.push(format!(
                "{method} {path} → {status}: cannot read the answer: {e}"
            ));
            return Response::from_parts(parts, Body::empty());
        }
    };
    if !bytes.is_empty() {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => {
                if let Err(e) = spec.check(&method, &path, status, &v) {
                    found.push(e);
                }
            }
            Err(e) => found.push(format!(
                "{method} {path} → {status}: says application/json but is not JSON ({e})"
            )),
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// `router` with [`layer`] around everything it answers.
pub fn wrap(router: axum::Router, found: Violations) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(found, layer))
}
