//! The transmitter's signing keys: one current ES256 (P-256) key that signs
//! every SET, kept outside the database in a PKCS#8 PEM file (created with
//! mode 0600 when missing), and the public halves of earlier keys, which
//! stay in the JWKS after a rotation so that receivers can still verify
//! what was signed before it.
//!
//! Each key is named in the JWKS and in every SET's header by its RFC 7638
//! thumbprint (`kid`): the SHA-256 of its public JWK's required members,
//! base64url, so the same key always has the same name on every replica.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::{
    PublicKey, SecretKey,
    elliptic_curve::{Generate, sec1::ToSec1Point},
    pkcs8::{DecodePublicKey, EncodePrivateKey, LineEnding},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// The signing key and the published public keys.
pub struct Keyring {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    /// The public JWKs, the current key's first.
    published: Vec<Value>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kid", &self.kid)
            .field("published", &self.published.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The key at `path` (made if missing) and the public keys of
    /// `previous` (PEM files: a PKCS#8 or SEC1 private key, or a public
    /// key).
    pub fn load(path: &Path, previous: &[PathBuf]) -> anyhow::Result<Self> {
        let secret = load_or_create(path)?;
        Self::from_keys(&secret, previous)
    }

    fn from_keys(secret: &SecretKey, previous: &[PathBuf]) -> anyhow::Result<Self> {
        let public = secret.public_key();
        let current = public_jwk(&public);
        let kid = thumbprint(&public);
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("cannot encode the SSF signing key: {e}"))?;
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes());
        let mut published = vec![current];
        let mut kids = vec![kid.clone()];
        for file in previous {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("cannot read SSF_PREVIOUS_KEYS entry {}", file.display())
            })?;
            let key = parse_public(&text).with_context(|| {
                format!(
                    "SSF_PREVIOUS_KEYS entry {} is not a P-256 key in PEM",
                    file.display()
                )
            })?;
            let old = thumbprint(&key);
            if !kids.contains(&old) {
                kids.push(old);
                published.push(public_jwk(&key));
            }
        }
        Ok(Self {
            kid,
            encoding,
            published,
        })
    }

    /// The current key's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK Set (RFC 7517 §5) of the published keys.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }

    /// `claims` as a JWS signed ES256 with the current key, its header
    /// carrying `typ` and the key's `kid`.
    pub fn sign(&self, typ: &str, claims: &Value) -> AppResult<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(AppError::internal)
    }
}

/// A private key (PKCS#8 or SEC1 PEM).
fn parse_secret(text: &str) -> anyhow::Result<SecretKey> {
    use p256::pkcs8::DecodePrivateKey;
    if let Ok(key) = SecretKey::from_pkcs8_pem(text) {
        return Ok(key);
    }
    SecretKey::from_sec1_pem(text).map_err(|_| anyhow::anyhow!("not a P-256 private key in PEM"))
}

/// The public half of a private key, or a public key (SPKI PEM).
fn parse_public(text: &str) -> anyhow::Result<PublicKey> {
    if let Ok(secret) = parse_secret(text) {
        return Ok(secret.public_key());
    }
    PublicKey::from_public_key_pem(text).map_err(|_| anyhow::anyhow!("not a P-256 key in PEM"))
}

/// The key at `path`, or a new one written there (mode 0600, its
/// directory made if missing). Two processes starting together on one
/// file agree: the new key is written to a file of its own and linked to
/// `path` only if nothing is there yet, so a key once named is never
/// replaced, and a loser reads the winner's.
fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return parse_secret(&text).with_context(|| {
                format!(
                    "SSF signing key {} is not a P-256 private key in PEM (PKCS#8 or SEC1)",
                    path.display()
                )
            });
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot read the SSF signing key {}", path.display()));
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot make the directory {}", dir.display()))?;
    }
    let secret = SecretKey::try_generate().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("cannot encode the SSF signing key: {e}"))?;
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temporary = PathBuf::from(name);
    let written = (|| -> std::io::Result<()> {
        let mut file = private_file(&temporary)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "made a new SSF signing key");
            Ok(secret)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SSF signing key {}", path.display()))?;
            parse_secret(&text)
        }
        Err(err) => {
            Err(err).with_context(|| format!("cannot write the SSF signing key {}", path.display()))
        }
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the SSF signing key is readable by others than its owner: chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The coordinates of `key`, base64url.
fn coordinates(key: &PublicKey) -> (String, String) {
    let point = key.to_sec1_point(false);
    let x = point
        .x()
        .map(|x| URL_SAFE_NO_PAD.encode(x))
        .unwrap_or_default();
    let y = point
        .y()
        .map(|y| URL_SAFE_NO_PAD.encode(y))
        .unwrap_or_default();
    (x, y)
}

/// The RFC 7638 thumbprint of `key`: base64url SHA-256 of its required
/// members in lexicographic order, without whitespace.
pub fn thumbprint(key: &PublicKey) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The public JWK of `key`, for verifying ES256 signatures.
fn public_jwk(key: &PublicKey) -> Value {
    let (x, y) = coordinates(key);
    json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "use": "sig",
        "alg": "ES256",
        "kid": thumbprint(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_made_private_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ssf.pem");
        let first = Keyring::load(&path, &[]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let again = Keyring::load(&path, &[]).unwrap();
        assert_eq!(first.kid(), again.kid());
        assert_eq!(first.jwks()["keys"].as_array().unwrap().len(), 1);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ssf.pem"]);
    }

    #[test]
    fn previous_keys_stay_published_after_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssf.pem");
        let old = Keyring::load(&path, &[]).unwrap();
        let retired = dir.path().join("ssf-old.pem");
        std::fs::rename(&path, &retired).unwrap();
        let new = Keyring::load(&path, std::slice::from_ref(&retired)).unwrap();
        assert_ne!(old.kid(), new.kid());
        let kids: Vec<_> = new.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [new.kid(), old.kid()]);
        // The current key listed again is not published twice.
        let same = Keyring::load(&path, &[retired, path.clone()]).unwrap();
        assert_eq!(same.jwks()["keys"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unreadable_keys_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssf.pem");
        std::fs::write(&path, "not a key").unwrap();
        let error = format!("{:#}", Keyring::load(&path, &[]).unwrap_err());
        assert!(error.contains("ssf.pem"), "{error}");
        let good = dir.path().join("good.pem");
        let missing = dir.path().join("missing.pem");
        let error = format!("{:#}", Keyring::load(&good, &[missing]).unwrap_err());
        assert!(error.contains("missing.pem"), "{error}");
    }

    #[test]
    fn the_thumbprint_is_the_rfc_7638_one() {
        // A fixed key, its thumbprint computed over the canonical JSON the
        // RFC prescribes (members in order, no whitespace).
        let secret = SecretKey::from_bytes(&[7u8; 32].into()).unwrap();
        let (x, y) = coordinates(&secret.public_key());
        assert_eq!(x.len(), 43);
        assert_eq!(y.len(), 43);
        let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()));
        assert_eq!(thumbprint(&secret.public_key()), expected);
        assert_eq!(thumbprint(&secret.public_key()).len(), 43);
    }

    #[test]
    fn a_signed_set_verifies_against_the_published_key() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::load(&dir.path().join("k.pem"), &[]).unwrap();
        let token = ring
            .sign(
                "secevent+jwt",
                &json!({"iss": "https://i.test", "jti": "1"}),
            )
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.kid()));
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(ring.jwks()["keys"][0].clone()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["iss"], "https://i.test");
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'A');
        assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());
    }
}
