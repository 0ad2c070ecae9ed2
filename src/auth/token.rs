//! Bearer tokens: how they are made, what a well-formed one looks like,
//! how the `Authorization` header carries one, and the hash the database
//! keeps instead of the token.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult, BAD_TOKEN};

/// Fixed prefix of every token, so secret scanners can spot a leaked one.
pub const TOKEN_PREFIX: &str = "smt_";
/// Random bytes in a token (from the OS CSPRNG).
const TOKEN_BYTES: usize = 32;
/// Length of a well-formed token: the prefix and 43 base64url characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;
/// How many characters of a token are kept for display.
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// A freshly made token: the plaintext goes to the client once, the rest to
/// the database.
pub struct NewToken {
    pub plaintext: String,
    pub hash: String,
    pub display_prefix: String,
}

pub fn generate_token() -> AppResult<NewToken> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("OS random source failed: {e}")))?;
    let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    Ok(NewToken {
        hash: hash_token(&plaintext),
        display_prefix: plaintext[..DISPLAY_PREFIX_LEN].to_owned(),
        plaintext,
    })
}

/// SHA-256 of the token, hex. Tokens carry 256 bits of entropy, so a fast
/// hash is enough; what matters is that the database never holds a usable
/// token.
pub fn hash_token(token: &str) -> String {
    // Into a buffer, not `hex::encode`'s char-by-char `String` (measured
    // on every request).
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(token.as_bytes()), &mut hex)
        .expect("64 hex digits for 32 bytes");
    String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
}

/// Checks the shape of a token before any database work.
pub fn is_well_formed_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Extracts the token from an `Authorization` header value. Anything other
/// than `Bearer <well-formed token>` is refused: a client that sends a
/// header means to be someone, and must not silently become anonymous.
pub fn bearer_token(header: &[u8]) -> AppResult<&str> {
    let value = std::str::from_utf8(header).map_err(|_| AppError::Unauthenticated(BAD_TOKEN))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(AppError::Unauthenticated(BAD_TOKEN))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !is_well_formed_token(token) {
        return Err(AppError::Unauthenticated(BAD_TOKEN));
    }
    Ok(token)
}

/// Fixed prefix of every API key (see `service::api_key`): secret
/// scanners spot a leaked key, and it is never taken for a session token.
pub const API_KEY_PREFIX: &str = "smk_";
/// Length of a well-formed API key: the prefix and 43 base64url characters
/// (32 random bytes).
pub const API_KEY_LEN: usize = API_KEY_PREFIX.len() + 43;

/// Checks the shape of an API key before any database work.
pub fn is_well_formed_api_key(key: &str) -> bool {
    key.len() == API_KEY_LEN
        && key.starts_with(API_KEY_PREFIX)
        && key[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What an `Authorization: Bearer` header carries: a session token or an
/// API key, told apart by their prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Session(&'a str),
    ApiKey(&'a str),
}

/// A missing, malformed, unknown or revoked API key.
pub const BAD_API_KEY: &str = "invalid or revoked API key";

/// Extracts the token or API key from an `Authorization` header value.
/// Like [`bearer_token`], anything not well formed is refused; a value
/// with the key prefix is judged as a key (and refused as one).
pub fn bearer_credential(header: &[u8]) -> AppResult<Credential<'_>> {
    let value = std::str::from_utf8(header).map_err(|_| AppError::Unauthenticated(BAD_TOKEN))?;
    if let Some((scheme, credential)) = value.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && credential.trim().starts_with(API_KEY_PREFIX)
    {
        let key = credential.trim();
        return if is_well_formed_api_key(key) {
            Ok(Credential::ApiKey(key))
        } else {
            Err(AppError::Unauthenticated(BAD_API_KEY))
        };
    }
    bearer_token(header).map(Credential::Session)
}

/// The display form of a token: its first characters and an ellipsis.
pub fn mask_token(display_prefix: &str) -> String {
    // Not `format!`: made for every listed session, and the formatter
    // costs ten times the copy (measured).
    const ELLIPSIS: &str = "…";
    let mut masked = String::with_capacity(display_prefix.len() + ELLIPSIS.len());
    masked.push_str(display_prefix);
    masked.push_str(ELLIPSIS);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_token_is_its_prefix_and_an_ellipsis() {
        assert_eq!(mask_token("smt_abcd"), "smt_abcd…");
        assert_eq!(mask_token(""), "…");
    }

    #[test]
    fn generated_tokens_are_well_formed_unique_and_hashed() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(is_well_formed_token(&a.plaintext), "{}", a.plaintext);
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash_token(&a.plaintext));
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(&a.plaintext[TOKEN_PREFIX.len()..]));
        assert_eq!(a.display_prefix, &a.plaintext[..8]);
    }

    #[test]
    fn bearer_header_accepts_only_a_well_formed_bearer_token() {
        let token = generate_token().unwrap().plaintext;
        assert_eq!(
            bearer_token(format!("Bearer {token}").as_bytes()).unwrap(),
            token
        );
        assert_eq!(
            bearer_token(format!("bearer  {token} ").as_bytes()).unwrap(),
            token
        );
        let bad = [
            (String::new(), "empty"),
            ("Bearer".to_owned(), "no token"),
            ("Bearer ".to_owned(), "empty token"),
            (format!("Basic {token}"), "wrong scheme"),
            (token.clone(), "no scheme"),
            (format!("Bearer {}", &token[..TOKEN_LEN - 1]), "truncated"),
            (format!("Bearer {token}x"), "too long"),
            (
                format!("Bearer {}", token.replacen("smt_", "xyz_", 1)),
                "wrong prefix",
            ),
            (
                format!("Bearer {}=", &token[..TOKEN_LEN - 1]),
                "bad character",
            ),
        ];
        for (header, why) in bad {
            assert!(
                bearer_token(header.as_bytes()).is_err(),
                "{why}: {header:?}"
            );
        }
        assert!(bearer_token(b"Bearer \xff\xfe").is_err(), "non-UTF-8");
    }

    #[test]
    fn bearer_credential_tells_keys_from_tokens() {
        let token = generate_token().unwrap().plaintext;
        let key = format!("{API_KEY_PREFIX}{}", "a".repeat(43));
        assert_eq!(
            bearer_credential(format!("Bearer {token}").as_bytes()).unwrap(),
            Credential::Session(&token)
        );
        assert_eq!(
            bearer_credential(format!("bearer {key}").as_bytes()).unwrap(),
            Credential::ApiKey(&key)
        );
        let short = bearer_credential(format!("Bearer {}", &key[..20]).as_bytes()).unwrap_err();
        assert_eq!(short.to_string(), BAD_API_KEY, "judged as a key");
        assert!(bearer_credential(format!("Basic {key}").as_bytes()).is_err());
        assert!(bearer_credential(b"Bearer nonsense").is_err());
    }
}
