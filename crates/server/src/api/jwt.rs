//! JWT role-based access (`service.jwt_rbac: true`), as Qdrant does it: a token is presented
//! where an API key would be, signed HS256 with the API key itself, and its claims say what it
//! may do: `exp` (seconds since the epoch, 30 s of leeway), `access` (`"m"` manage, `"r"` read
//! only, or per collection `[{"collection": .., "access": "r" | "rw"}]`; absent: manage) and
//! `value_exists` (the token is valid only while a point of a collection holds given payload
//! values — revocation without changing the key).

use base64::Engine;
use serde_json::Value;

/// What a caller may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// Everything (the API key, a token with `"access": "m"` or none).
    Manage,
    /// Reads anywhere (the read-only key, `"access": "r"`).
    Read,
    /// Only the listed collections, each read-only or read-write.
    Collections(Vec<CollectionAccess>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectionAccess {
    pub collection: String,
    pub write: bool,
}

impl Access {
    /// The access to one collection, if any: `Some(true)` read-write, `Some(false)` read.
    pub fn to_collection(&self, name: &str) -> Option<bool> {
        match self {
            Access::Manage => Some(true),
            Access::Read => Some(false),
            Access::Collections(list) => list.iter().filter(|c| c.collection == name).map(|c| c.write).max(),
        }
    }
}

/// `value_exists`: some point of `collection` must hold every `(key, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueExists {
    pub collection: String,
    pub matches: Vec<(String, Value)>,
}

/// A verified token's claims.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub access: Access,
    pub value_exists: Option<ValueExists>,
}

/// Seconds a token stays valid after its `exp` (clock skew), as in Qdrant.
const LEEWAY_SECS: f64 = 30.0;

/// Whether `key` has the shape of a JWT (three base64url parts) rather than a plain key.
pub fn looks_like_jwt(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() == 3 && parts[..2].iter().all(|p| !p.is_empty())
}

/// Verify `token` against `secret` (HS256) and read its claims; `now` in seconds since the
/// epoch. Every failure is a message for a 401/403 answer.
pub fn decode(token: &str, secret: &[u8], now: f64) -> Result<Claims, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWT".into());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = b64
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the JWT header is not base64url JSON")?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err("the JWT must be signed with HS256".into());
    }
    let signature = b64.decode(signature.trim_end_matches('=')).map_err(|_| "the JWT signature is not base64url")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    ring::hmac::verify(&key, signed.as_bytes(), &signature).map_err(|_| "the JWT signature is invalid")?;
    let claims: Value = b64
        .decode(payload.trim_end_matches('='))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the JWT payload is not base64url JSON")?;
    let claims = claims.as_object().ok_or("the JWT payload is not a JSON object")?;
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_f64().ok_or("JWT claim exp must be a number of seconds")?;
        if now > exp + LEEWAY_SECS {
            return Err("the JWT has expired".into());
        }
    }
    let access = match claims.get("access") {
        None | Some(Value::Null) => Access::Manage,
        Some(Value::String(s)) if s == "m" => Access::Manage,
        Some(Value::String(s)) if s == "r" => Access::Read,
        Some(Value::Array(items)) => Access::Collections(
            items
                .iter()
                .map(|item| {
                    // A token restricted to points by payload must not widen to the whole
                    // collection where the restriction is not enforced: refused.
                    if item.get("payload").is_some_and(|p| !p.is_null()) {
                        return Err("JWT claim access: payload restrictions are not supported (Qdrant removed them \
                                    in 1.16); issue a token without \"payload\""
                            .to_string());
                    }
                    let collection = item.get("collection").and_then(Value::as_str);
                    let write = match item.get("access").and_then(Value::as_str) {
                        Some("r") => Some(false),
                        Some("rw") => Some(true),
                        _ => None,
                    };
                    match (collection, write) {
                        (Some(c), Some(write)) => Ok(CollectionAccess { collection: c.to_string(), write }),
                        _ => Err("JWT claim access: each entry needs \"collection\" and \"access\": \"r\" or \"rw\""
                            .to_string()),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err("JWT claim access must be \"m\", \"r\" or a list of collection accesses".into()),
    };
    let value_exists = match claims.get("value_exists") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let bad =
                || "JWT claim value_exists needs \"collection\" and \"matches\": [{\"key\", \"value\"}]".to_string();
            let collection = v.get("collection").and_then(Value::as_str).ok_or_else(bad)?.to_string();
            let matches = v
                .get("matches")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(|m| match (m.get("key").and_then(Value::as_str), m.get("value")) {
                    (Some(k), Some(v)) => Ok((k.to_string(), v.clone())),
                    _ => Err(bad()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(ValueExists { collection, matches })
        }
    };
    Ok(Claims { access, value_exists })
}

/// What a REST request needs, by method and path.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Reads outside any one collection (full snapshots, cluster, telemetry, metrics).
    GlobalRead,
    /// Changes outside what collection access grants (create/delete/update collections,
    /// aliases, shard keys, snapshot upload/recovery, full snapshots, cluster changes).
    Manage,
    /// Lists of collections or aliases: allowed to all, filtered to a token's collections.
    List,
    CollectionRead(String),
    CollectionWrite(String),
}

/// Classify a REST request (Qdrant's table of access).
pub fn classify(method: &axum::http::Method, path: &str, reads_only: bool) -> Need {
    use axum::http::Method;
    let get = method == Method::GET || method == Method::HEAD;
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let fallback = if get { Need::GlobalRead } else { Need::Manage };
    match segs.as_slice() {
        ["collections"] | ["aliases"] if get => Need::List,
        ["collections", "aliases"] => Need::Manage,
        ["collections", c] if get => Need::CollectionRead(c.to_string()),
        ["collections", _] => Need::Manage,
        ["collections", c, rest @ ..] => {
            let c = c.to_string();
            let read = if get { Need::CollectionRead(c.clone()) } else { Need::CollectionWrite(c.clone()) };
            match rest {
                ["points", ..] | ["facet"] => {
                    if reads_only {
                        Need::CollectionRead(c)
                    } else {
                        Need::CollectionWrite(c)
                    }
                }
                ["index"] | ["index", _] => read,
                ["snapshots", "upload"] | ["snapshots", "recover"] => Need::Manage,
                ["snapshots"] | ["snapshots", _] => read,
                ["shards", _, "snapshots", "upload"] | ["shards", _, "snapshots", "recover"] => Need::Manage,
                ["shards", _, "snapshots"] | ["shards", _, "snapshots", _] => read,
                ["exists"] | ["aliases"] | ["cluster"] | ["shards"] | ["optimizations"] if get => read,
                _ => Need::Manage,
            }
        }
        _ => fallback,
    }
}

/// Whether `access` covers `need`; `Err` carries the refusal message.
pub fn permits(access: &Access, need: &Need) -> Result<(), String> {
    let denied = |what: &str| Err(format!("Forbidden: {what}"));
    match (access, need) {
        (Access::Manage, _) | (_, Need::List) => Ok(()),
        (Access::Read, Need::GlobalRead | Need::CollectionRead(_)) => Ok(()),
        (Access::Read, _) => denied("read-only access cannot change data"),
        (Access::Collections(_), Need::GlobalRead | Need::Manage) => {
            denied("this operation needs global access; the token grants access to listed collections only")
        }
        (a, Need::CollectionRead(c)) => match a.to_collection(c) {
            Some(_) => Ok(()),
            None => denied(&format!("no access to collection {c}")),
        },
        (a, Need::CollectionWrite(c)) => match a.to_collection(c) {
            Some(true) => Ok(()),
            Some(false) => denied(&format!("read-only access to collection {c}")),
            None => denied(&format!("no access to collection {c}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::json;

    use super::*;

    fn sign(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = format!("{}.{}", b64.encode(header.to_string()), b64.encode(claims.to_string()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let sig = ring::hmac::sign(&key, head.as_bytes());
        format!("{head}.{}", b64.encode(sig.as_ref()))
    }

    fn hs256() -> Value {
        json!({"alg": "HS256", "typ": "JWT"})
    }

    #[test]
    fn decodes_and_verifies() {
        let t = sign(&hs256(), &json!({"access": "r", "exp": 1000}), b"key");
        assert!(looks_like_jwt(&t));
        assert!(!looks_like_jwt("plain-api-key"));
        assert_eq!(decode(&t, b"key", 900.0).map(|c| c.access), Ok(Access::Read));
        assert_eq!(decode(&t, b"key", 1029.0).map(|c| c.access), Ok(Access::Read), "30 s leeway");
        assert!(decode(&t, b"key", 1031.0).is_err(), "expired");
        assert!(decode(&t, b"other", 900.0).is_err(), "wrong key");
        let none = sign(&json!({"alg": "none"}), &json!({}), b"key");
        assert!(decode(&none, b"key", 0.0).is_err(), "alg none refused");
        let mut tampered = t.clone();
        tampered.insert(t.find('.').map_or(0, |i| i + 2), 'x');
        assert!(decode(&tampered, b"key", 900.0).is_err());
        let manage = sign(&hs256(), &json!({}), b"key");
        assert_eq!(decode(&manage, b"key", 0.0).map(|c| c.access), Ok(Access::Manage));
        let colls = sign(
            &hs256(),
            &json!({"access": [{"collection": "a", "access": "rw"}, {"collection": "b", "access": "r"}]}),
            b"key",
        );
        let access = decode(&colls, b"key", 0.0).map(|c| c.access).expect("valid");
        assert_eq!(access.to_collection("a"), Some(true));
        assert_eq!(access.to_collection("b"), Some(false));
        assert_eq!(access.to_collection("c"), None);
        let bad = sign(&hs256(), &json!({"access": [{"collection": "a", "access": "w"}]}), b"key");
        assert!(decode(&bad, b"key", 0.0).is_err());
        let by_payload = sign(
            &hs256(),
            &json!({"access": [{"collection": "a", "access": "r", "payload": {"user": "ann"}}]}),
            b"key",
        );
        let refused = decode(&by_payload, b"key", 0.0).map(|c| c.access).expect_err("not widened to the collection");
        assert!(refused.contains("payload restrictions are not supported"), "{refused}");
        let ve = sign(
            &hs256(),
            &json!({"value_exists": {"collection": "users", "matches": [{"key": "user", "value": "ann"}]}}),
            b"key",
        );
        let claims = decode(&ve, b"key", 0.0).expect("valid");
        assert_eq!(
            claims.value_exists,
            Some(ValueExists { collection: "users".into(), matches: vec![("user".into(), json!("ann"))] })
        );
    }

    #[test]
    fn table_of_access() {
        let coll = Access::Collections(vec![
            CollectionAccess { collection: "a".into(), write: true },
            CollectionAccess { collection: "b".into(), write: false },
        ]);
        let need = |m: Method, p: &str, reads: bool| classify(&m, p, reads);
        let ok = |a: &Access, n: Need| permits(a, &n).is_ok();
        // Points: reads for r, writes for rw.
        assert!(ok(&coll, need(Method::POST, "/collections/b/points/search", true)));
        assert!(!ok(&coll, need(Method::PUT, "/collections/b/points", false)));
        assert!(ok(&coll, need(Method::PUT, "/collections/a/points", false)));
        assert!(!ok(&coll, need(Method::POST, "/collections/c/points/search", true)));
        // Payload indexes and collection snapshots follow collection write access.
        assert!(ok(&coll, need(Method::PUT, "/collections/a/index", false)));
        assert!(!ok(&coll, need(Method::PUT, "/collections/b/index", false)));
        assert!(ok(&coll, need(Method::POST, "/collections/a/snapshots", false)));
        assert!(ok(&coll, need(Method::GET, "/collections/b/snapshots/s1", true)));
        // Needs manage: collection lifecycle, aliases, uploads and recoveries, full snapshots.
        for (m, p) in [
            (Method::PUT, "/collections/a"),
            (Method::DELETE, "/collections/a"),
            (Method::PATCH, "/collections/a"),
            (Method::POST, "/collections/aliases"),
            (Method::PUT, "/collections/a/snapshots/recover"),
            (Method::POST, "/collections/a/snapshots/upload"),
            (Method::PUT, "/collections/a/shards"),
            (Method::POST, "/snapshots"),
        ] {
            assert_eq!(need(m.clone(), p, false), Need::Manage, "{m} {p}");
            assert!(!ok(&coll, need(m.clone(), p, false)));
            assert!(!ok(&Access::Read, need(m.clone(), p, false)));
            assert!(ok(&Access::Manage, need(m, p, false)));
        }
        // Global reads: read-only yes, collection tokens no.
        for p in ["/snapshots", "/cluster", "/telemetry", "/metrics"] {
            assert!(ok(&Access::Read, need(Method::GET, p, true)));
            assert!(!ok(&coll, need(Method::GET, p, true)));
        }
        // Lists for everyone (filtered by the caller), collection info for its collections.
        assert!(ok(&coll, need(Method::GET, "/collections", true)));
        assert!(ok(&coll, need(Method::GET, "/collections/b", true)));
        assert!(!ok(&coll, need(Method::GET, "/collections/c", true)));
        assert!(ok(&coll, need(Method::GET, "/collections/b/exists", true)));
    }
}
