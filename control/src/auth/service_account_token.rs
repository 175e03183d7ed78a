//! ServiceAccount tokens: JWTs with Kubernetes' claims (`iss`, `sub`, `aud`,
//! `exp`, `nbf`, `iat`, `jti`, and `kubernetes.io` naming the namespace, the
//! ServiceAccount and any object the token is bound to), signed ES256 with a
//! key kept in `<data>/pki/service-account.key`, as kube-apiserver signs them
//! with `--service-account-signing-key-file`.
//!
//! [`TokenSigner::verify`] checks signature, issuer, audience and time; the
//! caller checks that the ServiceAccount (and bound object) still exist with
//! the uids the token names.

use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CaError;
use super::ca::write_private;

/// The issuer of, and the API's audience for, ServiceAccount tokens
/// (kube-apiserver's default `--service-account-issuer` in kubeadm clusters).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Signs and verifies ServiceAccount tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// What the token is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectClaim,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectClaim {
    pub name: String,
    pub uid: String,
}

/// Why a token was not accepted (never shown to the client, which gets 401).
#[derive(Debug, thiserror::Error)]
pub enum TokenRejected {
    #[error("not a valid ServiceAccount token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

impl TokenSigner {
    /// Loads the signing key from `<dir>/service-account.key`, creating it at
    /// first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, CaError> {
        let path = dir.join("service-account.key");
        let key = match std::fs::read_to_string(&path) {
            Ok(pem) => KeyPair::from_pem(&pem)
                .map_err(|e| CaError::Certificate("read the service account key", e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_private(&path, &key.serialize_pem())?;
                key
            }
            Err(source) => {
                return Err(CaError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        Self::from_key(&key)
    }

    /// A signer with a key of its own that is kept nowhere (tests, embedding).
    pub fn ephemeral() -> Result<Self, CaError> {
        Self::from_key(&Self::generate()?)
    }

    fn generate() -> Result<KeyPair, CaError> {
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError::Certificate("make the service account key", e))
    }

    fn from_key(key: &KeyPair) -> Result<Self, CaError> {
        let public = key.public_key_raw();
        Ok(TokenSigner {
            encoding: EncodingKey::from_ec_der(&key.serialize_der()),
            decoding: DecodingKey::from_ec_der(public),
            key_id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(public)),
        })
    }

    /// A signed token with `claims`.
    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// The claims of a token this signer issued for the API's audience, if it
    /// is still valid.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenRejected> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64, aud: &str) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "system:serviceaccount:team:robot".into(),
            aud: vec![aud.into()],
            exp: now + 600,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            kubernetes: KubernetesClaims {
                namespace: "team".into(),
                serviceaccount: ObjectClaim {
                    name: "robot".into(),
                    uid: "u1".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn tokens_verify_only_with_their_key_audience_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(dir.path()).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let token = signer.issue(&claims(now, ISSUER)).unwrap();
        assert_eq!(signer.verify(&token).unwrap(), claims(now, ISSUER));
        // The key is kept: the same signer after a restart accepts it.
        let again = TokenSigner::load_or_create(dir.path()).unwrap();
        assert!(again.verify(&token).is_ok());
        // Another cluster's key, another audience, an expired token, a
        // tampered one: refused.
        assert!(TokenSigner::ephemeral().unwrap().verify(&token).is_err());
        assert!(
            signer
                .verify(&signer.issue(&claims(now, "vault")).unwrap())
                .is_err()
        );
        let mut old = claims(now - 7200, ISSUER);
        old.exp = now - 3600;
        assert!(signer.verify(&signer.issue(&old).unwrap()).is_err());
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims(now, ISSUER);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged).unwrap());
        assert!(signer.verify(&parts.join(".")).is_err());
    }
}
