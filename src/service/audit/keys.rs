//! The key that signs checkpoints, and the public keys that verify them.
//!
//! The signing key is a file outside the database (an administrator who
//! can rewrite the database must not be able to sign what they wrote):
//! one line, `ed25519-secret:` and the 32-byte seed in base64. It is
//! created, owner-only (0600), by the first process that needs it, and a
//! key file readable by others is refused, as ssh refuses such a key.
//!
//! A public key is one line, `ed25519:` and the 32 bytes in base64,
//! optionally followed by a comment (`# …`); a keyring is any number of
//! such lines, so that checkpoints signed before a key rotation stay
//! verifiable. A checkpoint names its key by id: the first 16 hex digits
//! of SHA-256 of the public key's bytes.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

const SECRET_PREFIX: &str = "ed25519-secret:";
const PUBLIC_PREFIX: &str = "ed25519:";

/// The signing key of this installation (see the module's notes).
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public.id)
    }
}

impl Signer {
    /// The key in `path`, created (with its directory) if missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_file(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(e)
                .with_context(|| format!("cannot read the audit signing key {}", path.display())),
        }
    }

    /// The key in `path`, which must exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the audit signing key {}", path.display()))?;
        Self::from_file(path, &text)
    }

    fn from_file(path: &Path, text: &str) -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)?.permissions().mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "the audit signing key {} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
        let seed = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .with_context(|| {
                format!(
                    "the audit signing key {} is malformed (expected one line `{SECRET_PREFIX}<base64 of 32 bytes>`)",
                    path.display()
                )
            })?;
        Ok(Self::from_seed(seed))
    }

    /// A new key in `path`, written to a temporary file first and linked
    /// into place only if no other process got there first (then theirs
    /// is the key).
    fn create(path: &Path) -> anyhow::Result<Self> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("OS random source failed: {e}"))?;
        let temporary = PathBuf::from(format!("{}.{}.tmp", path.display(), hex::encode(nonce)));
        let written = (|| -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&temporary)?;
            writeln!(file, "{SECRET_PREFIX}{}", STANDARD.encode(seed))?;
            file.sync_all()
        })();
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "created the audit signing key");
                Ok(Self::from_seed(seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(e)
                .with_context(|| format!("cannot create the audit signing key {}", path.display())),
        }
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let public = PublicKey::new(key.verifying_key());
        Self { key, public }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn key_id(&self) -> &str {
        &self.public.id
    }

    /// The signature of `message`, hex.
    pub(super) fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.key.sign(message).to_bytes())
    }
}

/// A key that verifies checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
}

impl PublicKey {
    fn new(key: VerifyingKey) -> Self {
        let id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        Self { key, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// One line: `ed25519:<base64>  # key id <id>`.
    pub fn to_line(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}{}  # audit checkpoint key {}",
            STANDARD.encode(self.key.as_bytes()),
            self.id
        )
    }

    /// Whether `signature` (hex) is this key's over `message`.
    fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = hex::decode(signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        self.key
            .verify(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// Public keys, by id: the current key and those it replaced.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

impl Keyring {
    /// The keys of a keyring file's text (see the module's notes); `Err`
    /// names the first line that is not a key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ring = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let key = line
                .split_whitespace()
                .next()
                .and_then(|word| word.strip_prefix(PUBLIC_PREFIX))
                .and_then(|b64| STANDARD.decode(b64).ok())
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
                .ok_or_else(|| {
                    format!(
                        "line {} is not a public key (expected `{PUBLIC_PREFIX}<base64 of 32 bytes>`)",
                        n + 1
                    )
                })?;
            ring.add(PublicKey::new(key));
        }
        Ok(ring)
    }

    /// The keys in the file `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public keys {}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn add(&mut self, key: PublicKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    pub fn extend(&mut self, other: Keyring) {
        for key in other.keys {
            self.add(key);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `Ok` when the key `key_id` is here and signed `message`.
    pub(super) fn check(
        &self,
        key_id: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), String> {
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| {
            format!("it is signed by key {key_id}, which is not among the public keys given")
        })?;
        if key.verifies(message, signature) {
            Ok(())
        } else {
            Err(format!("its signature by key {key_id} does not verify"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_owner_only_and_read_back_the_same() {
        let dir = tempfile_dir();
        let path = dir.join("sub").join("audit-signing.key");
        let first = Signer::load_or_create(&path).unwrap();
        let again = Signer::load_or_create(&path).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = Signer::load(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn keyrings_verify_only_their_own_keys_signatures() {
        let a = Signer::from_seed([1; 32]);
        let b = Signer::from_seed([2; 32]);
        let text = format!(
            "# old and new\n{}\n\n{}\n",
            a.public_key().to_line(),
            b.public_key().to_line()
        );
        let ring = Keyring::parse(&text).unwrap();
        assert_eq!(ring.ids().count(), 2);
        let signature = a.sign(b"message");
        assert!(ring.check(a.key_id(), b"message", &signature).is_ok());
        assert!(ring.check(a.key_id(), b"massage", &signature).is_err());
        assert!(ring.check(b.key_id(), b"message", &signature).is_err());
        let only_b = Keyring::parse(&b.public_key().to_line()).unwrap();
        let err = only_b
            .check(a.key_id(), b"message", &signature)
            .unwrap_err();
        assert!(err.contains("not among"), "{err}");
        assert!(
            Keyring::parse("ed25519:nonsense")
                .unwrap_err()
                .contains("line 1")
        );
    }

    fn tempfile_dir() -> PathBuf {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).unwrap();
        std::env::temp_dir().join(format!("sm-keys-{}", hex::encode(nonce)))
    }
}
