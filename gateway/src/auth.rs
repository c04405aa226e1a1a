//! Who is calling: a per-service API key (`X-Api-Key`) or an HS256 JWT
//! (`Authorization: Bearer …`).
//!
//! API keys are kept as their SHA-256 only (`service:hex` lines, [`ApiKeys::parse`]): a key is
//! a random secret of at least 128 bits, so a fast hash is enough — a slow password hash
//! protects guessable secrets, and these are not. `eventhub-gateway hash-key` prints the line
//! of a key.
//!
//! A JWT is signed with HS256 and the configured secret, must carry `exp`, and its `sub` must
//! be a declared service or operator. An optional `user_id` claim names the end user a
//! frontend acts for: such a caller follows only that user's events ([`crate::stream`]).

use std::collections::{BTreeSet, HashMap};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A declared service.
    Service,
    /// A declared operator (the dashboard).
    Operator,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The service (or operator) name.
    pub name: String,
    /// Service or operator.
    pub role: Role,
    /// The end user a frontend acts for (JWT claim `user_id`), if any.
    pub user_id: Option<String>,
}

/// SHA-256 of an API key, lowercase hex: what a keys file stores.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

/// The shortest API key accepted, in characters: 32 hex digits are 128 bits.
pub const MIN_KEY_LEN: usize = 32;

/// API keys by their SHA-256.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<String, String>,
}

impl ApiKeys {
    /// Parses `service:sha256-hex` lines; blank lines and `#` comments are skipped. Several
    /// keys may name one service (rotation).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line.split_once(':').ok_or_else(|| {
                format!(
                    "line {}: expected `service:sha256-hex` (see `eventhub-gateway hash-key`)",
                    n + 1
                )
            })?;
            let hash = hash.trim().to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "line {}: the hash of `{}` is not 64 hex digits (a SHA-256)",
                    n + 1,
                    name.trim()
                ));
            }
            keys.by_hash.insert(hash, name.trim().to_string());
        }
        Ok(keys)
    }

    /// Adds a key by its hash ([`hash_key`]).
    pub fn insert(&mut self, name: impl Into<String>, hash: impl Into<String>) {
        self.by_hash
            .insert(hash.into().to_ascii_lowercase(), name.into());
    }

    /// The names the keys belong to.
    pub fn names(&self) -> BTreeSet<&str> {
        self.by_hash.values().map(String::as_str).collect()
    }

    fn lookup(&self, key: &str) -> Option<&str> {
        // Looked up by hash: comparing hashes leaks nothing about the key itself.
        self.by_hash.get(&hash_key(key)).map(String::as_str)
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    user_id: Option<String>,
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = 30;
    validation
}

/// Checks credentials against the API keys, the JWT secret and the declared names.
#[derive(Clone)]
pub struct Authenticator {
    keys: ApiKeys,
    /// One key per accepted algorithm: a token is checked only with the key of the algorithm
    /// its header names, and only that algorithm (no HS256 token verified with an RSA key's
    /// public bytes as its secret).
    jwt: Vec<(Algorithm, DecodingKey, Validation)>,
    services: BTreeSet<String>,
    operators: BTreeSet<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys.by_hash.len())
            .field(
                "jwt",
                &self.jwt.iter().map(|(a, _, _)| *a).collect::<Vec<_>>(),
            )
            .field("services", &self.services)
            .field("operators", &self.operators)
            .finish()
    }
}

impl Authenticator {
    /// Accepts `keys` and, if `jwt_secret` is set, HS256 tokens signed with it, for the
    /// declared `services` and `operators`. A key of an undeclared name is an error.
    pub fn new(
        keys: ApiKeys,
        jwt_secret: Option<&[u8]>,
        services: impl IntoIterator<Item = String>,
        operators: impl IntoIterator<Item = String>,
    ) -> Result<Self, String> {
        let services: BTreeSet<String> = services.into_iter().collect();
        let operators: BTreeSet<String> = operators.into_iter().collect();
        for name in keys.names() {
            if !services.contains(name) && !operators.contains(name) {
                return Err(format!(
                    "an API key names `{name}`, which is neither a declared service nor an \
                     operator in services.json"
                ));
            }
        }
        let mut jwt = Vec::new();
        match jwt_secret {
            Some(secret) if secret.len() < 32 => {
                return Err("the JWT secret must be at least 32 bytes".into());
            }
            Some(secret) => jwt.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret),
                validation(Algorithm::HS256),
            )),
            None => {}
        }
        Ok(Self {
            keys,
            jwt,
            services,
            operators,
        })
    }

    /// Also accepts RS256 tokens verified with this RSA public key (PEM, `BEGIN PUBLIC KEY`
    /// or `BEGIN RSA PUBLIC KEY`).
    pub fn rs256_public_key(mut self, pem: &[u8]) -> Result<Self, String> {
        let key = DecodingKey::from_rsa_pem(pem)
            .map_err(|e| format!("the RS256 public key is not an RSA public key in PEM: {e}"))?;
        self.jwt
            .push((Algorithm::RS256, key, validation(Algorithm::RS256)));
        Ok(self)
    }

    fn caller(&self, name: &str, user_id: Option<String>) -> Option<Caller> {
        let role = if self.operators.contains(name) {
            Role::Operator
        } else if self.services.contains(name) {
            Role::Service
        } else {
            return None;
        };
        Some(Caller {
            name: name.to_string(),
            role,
            user_id,
        })
    }

    /// The caller of a request: `X-Api-Key`, else `Authorization: Bearer <jwt>`, else
    /// `token` (a browser's WebSocket cannot set headers, so `/v1/stream` passes its token in
    /// the query).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Result<Caller, ApiError> {
        if let Some(key) = headers.get(API_KEY_HEADER) {
            let key = key
                .to_str()
                .map_err(|_| ApiError::unauthorized("the API key is not valid"))?;
            if key.trim().len() < MIN_KEY_LEN {
                return Err(ApiError::unauthorized("the API key is not valid"));
            }
            let name = self
                .keys
                .lookup(key)
                .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))?;
            return self
                .caller(name, None)
                .ok_or_else(|| ApiError::unauthorized("the API key is not valid"));
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match bearer.or(token) {
            Some(jwt) => self.verify_jwt(jwt),
            None => Err(ApiError::unauthorized(
                "missing credentials: send an API key in `X-Api-Key` or a JWT in \
                 `Authorization: Bearer`",
            )),
        }
    }

    fn verify_jwt(&self, token: &str) -> Result<Caller, ApiError> {
        if self.jwt.is_empty() {
            return Err(ApiError::unauthorized(
                "this gateway accepts no bearer tokens (no JWT key is configured)",
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("the bearer token is not valid: {e}")))?;
        let Some((_, key, validation)) = self.jwt.iter().find(|(alg, _, _)| *alg == header.alg)
        else {
            let accepted: Vec<String> = self.jwt.iter().map(|(a, _, _)| format!("{a:?}")).collect();
            return Err(ApiError::unauthorized(format!(
                "the bearer token is signed with {:?}; this gateway accepts {}",
                header.alg,
                accepted.join(", ")
            )));
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| ApiError::unauthorized(format!("the bearer token is not valid: {e}")))?;
        let claims = data.claims;
        if let Some(user) = &claims.user_id
            && (user.is_empty() || user.len() > 256)
        {
            return Err(ApiError::unauthorized(
                "the bearer token's `user_id` is empty or too long",
            ));
        }
        self.caller(&claims.sub, claims.user_id).ok_or_else(|| {
            ApiError::unauthorized(format!(
                "the bearer token's subject `{}` is not a declared service",
                claims.sub
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let mut keys = ApiKeys::default();
        keys.insert("photo", hash_key("0123456789abcdef0123456789abcdef"));
        Authenticator::new(
            keys,
            Some(b"a-secret-of-at-least-thirty-two-bytes!"),
            ["photo".to_string()],
            ["ops".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn keys_file_lines() {
        let keys = ApiKeys::parse(&format!(
            "# comment\n\nphoto:{}\n",
            hash_key("0123456789abcdef0123456789abcdef")
        ))
        .unwrap();
        assert_eq!(keys.names().into_iter().collect::<Vec<_>>(), ["photo"]);
        assert!(ApiKeys::parse("photo").unwrap_err().contains("line 1"));
        assert!(ApiKeys::parse("photo:abc").unwrap_err().contains("64 hex"));
    }

    #[test]
    fn undeclared_key_names_are_refused() {
        let mut keys = ApiKeys::default();
        keys.insert("nobody", hash_key("x"));
        let err = Authenticator::new(keys, None, ["photo".to_string()], []).unwrap_err();
        assert!(err.contains("nobody"), "{err}");
    }

    #[test]
    fn api_key_and_jwt() {
        let a = auth();
        let mut h = HeaderMap::new();
        h.insert(
            API_KEY_HEADER,
            "0123456789abcdef0123456789abcdef".parse().unwrap(),
        );
        assert_eq!(a.authenticate(&h, None).unwrap().name, "photo");
        h.insert(
            API_KEY_HEADER,
            "0123456789abcdef0123456789abcdeX".parse().unwrap(),
        );
        assert!(a.authenticate(&h, None).is_err());

        let exp = chrono::Utc::now().timestamp() + 60;
        let token = |sub: &str, secret: &[u8]| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &serde_json::json!({"sub": sub, "exp": exp, "user_id": "u-1"}),
                &jsonwebtoken::EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        let good = token("photo", b"a-secret-of-at-least-thirty-two-bytes!");
        let caller = a.authenticate(&HeaderMap::new(), Some(&good)).unwrap();
        assert_eq!(caller.user_id.as_deref(), Some("u-1"));
        let forged = token("photo", b"another-secret-of-at-least-32-bytes!!");
        assert!(a.authenticate(&HeaderMap::new(), Some(&forged)).is_err());
        let stranger = token("mallory", b"a-secret-of-at-least-thirty-two-bytes!");
        assert!(a.authenticate(&HeaderMap::new(), Some(&stranger)).is_err());
        let ops = token("ops", b"a-secret-of-at-least-thirty-two-bytes!");
        assert_eq!(
            a.authenticate(&HeaderMap::new(), Some(&ops)).unwrap().role,
            Role::Operator
        );
    }
}
