//! The shape a mapper must return (`{identity: {traits, metadata_public?, metadata_admin?,
//! verified_addresses?}}`), checked before anything is stored.

use serde_json::Value;
use tessera_mapper::MapperError;

#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub traits: Value,
    pub metadata_public: Value,
    pub metadata_admin: Value,
    /// `[{value, via}]` addresses the mapper vouches for (e.g. an email the upstream verified).
    pub verified_addresses: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Mapper(MapperError),
    #[error("the mapper's output {0}; it must return {{identity: {{traits: {{...}}}}}}")]
    Shape(String),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Mapped {
    pub fn from_output(out: Value) -> Result<Mapped, MappingError> {
        let identity = out
            .get("identity")
            .ok_or_else(|| MappingError::Shape("has no `identity` key".into()))?;
        if !identity.is_object() {
            return Err(MappingError::Shape(format!(
                "has `identity` as {}",
                kind(identity)
            )));
        }
        // What a mapper returns is stored and read back: keep it within the depth every value
        // built from untrusted (here: upstream) input is held to.
        if tessera_core::schema::depth(identity) > tessera_core::schema::MAX_DEPTH {
            return Err(MappingError::Shape(format!(
                "nests `identity` more than {} levels deep",
                tessera_core::schema::MAX_DEPTH
            )));
        }
        let traits = identity.get("traits").cloned().unwrap_or(Value::Null);
        if !traits.is_object() {
            return Err(MappingError::Shape(format!(
                "has `identity.traits` as {}",
                kind(&traits)
            )));
        }
        let meta = |k: &str| -> Result<Value, MappingError> {
            match identity.get(k) {
                None | Some(Value::Null) => Ok(Value::Null),
                Some(v @ Value::Object(_)) => Ok(v.clone()),
                Some(v) => Err(MappingError::Shape(format!(
                    "has `identity.{k}` as {}; it must be an object",
                    kind(v)
                ))),
            }
        };
        let mut verified_addresses = vec![];
        match identity.get("verified_addresses") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for a in list {
                    let value = a.get("value").and_then(Value::as_str);
                    let via = a.get("via").and_then(Value::as_str).unwrap_or("email");
                    match value {
                        Some(v) => verified_addresses.push((v.to_string(), via.to_string())),
                        None => {
                            return Err(MappingError::Shape(
                                "has a `verified_addresses` entry without a string `value`".into(),
                            ));
                        }
                    }
                }
            }
            Some(v) => {
                return Err(MappingError::Shape(format!(
                    "has `identity.verified_addresses` as {}; it must be an array",
                    kind(v)
                )));
            }
        }
        Ok(Mapped {
            traits,
            metadata_public: meta("metadata_public")?,
            metadata_admin: meta("metadata_admin")?,
            verified_addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_documented_shape() {
        let m = Mapped::from_output(
            json!({"identity": {"traits": {"email": "a@b.c"}, "metadata_public": {"u": 1}}}),
        )
        .unwrap();
        assert_eq!(m.traits["email"], "a@b.c");
        assert_eq!(m.metadata_public["u"], 1);
        assert_eq!(m.metadata_admin, Value::Null);
    }

    #[test]
    fn refuses_output_nested_deeper_than_the_limit() {
        let mut deep = serde_json::json!("leaf");
        for _ in 0..100 {
            deep = serde_json::json!({ "x": deep });
        }
        let out = serde_json::json!({ "identity": { "traits": {}, "metadata_public": deep } });
        match Mapped::from_output(out) {
            Err(MappingError::Shape(m)) => assert!(m.contains("levels deep"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_other_shapes_with_what_was_found() {
        for (out, needle) in [
            (json!({}), "no `identity`"),
            (json!({"identity": []}), "an array"),
            (json!({"identity": {}}), "`identity.traits` as null"),
            (json!({"identity": {"traits": "x"}}), "a string"),
            (
                json!({"identity": {"traits": {}, "metadata_admin": 3}}),
                "metadata_admin",
            ),
        ] {
            let e = Mapped::from_output(out).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
