//! The OpenID Shared Signals transmitter (SSF 1.0, with the CAEP events):
//! the documents a receiver starts from — the transmitter's configuration
//! metadata (SSF 1.0 §7.1, at `/.well-known/ssf-configuration`) and the
//! JWK Set its Security Event Tokens are verified with — and the signing
//! key behind them ([`keys`]).

pub mod keys;
pub mod poll;
pub mod push;
pub mod set;
pub mod stream;

use serde_json::{Value, json};

pub use keys::Keyring;

/// The SSF version the metadata declares.
pub const SPEC_VERSION: &str = "1_0";
/// Push delivery (RFC 8935).
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// Poll delivery (RFC 8936).
pub const POLL: &str = "urn:ietf:rfc:8936";
/// The media type of a SET in a push request and the `typ` of its header
/// (RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";
/// CAEP: a session ended.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a credential changed.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";

/// Paths the server answers under, relative to the issuer.
pub mod paths {
    pub const CONFIGURATION: &str = "/.well-known/ssf-configuration";
    pub const JWKS: &str = "/jwks.json";
    pub const STREAM: &str = "/ssf/stream";
    pub const STATUS: &str = "/ssf/status";
    pub const ADD_SUBJECT: &str = "/ssf/subjects:add";
    pub const REMOVE_SUBJECT: &str = "/ssf/subjects:remove";
    pub const VERIFY: &str = "/ssf/verify";
    /// A poll stream's endpoint is this and `/` and the stream's id.
    pub const POLL: &str = "/ssf/poll";
}

/// The transmitter configuration metadata of the issuer `issuer` (an
/// origin, possibly with a path, without a trailing slash).
pub fn configuration(issuer: &str) -> Value {
    let at = |path: &str| format!("{issuer}{path}");
    json!({
        "spec_version": SPEC_VERSION,
        "issuer": issuer,
        "jwks_uri": at(paths::JWKS),
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": at(paths::STREAM),
        "status_endpoint": at(paths::STATUS),
        "add_subject_endpoint": at(paths::ADD_SUBJECT),
        "remove_subject_endpoint": at(paths::REMOVE_SUBJECT),
        "verification_endpoint": at(paths::VERIFY),
        // Stream management takes API keys as bearer tokens (RFC 6750).
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:6750" }],
        "default_subjects": "ALL",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_under_the_issuer() {
        let doc = configuration("https://auth.example.com");
        for field in [
            "jwks_uri",
            "configuration_endpoint",
            "status_endpoint",
            "add_subject_endpoint",
            "remove_subject_endpoint",
            "verification_endpoint",
        ] {
            let url = doc[field].as_str().unwrap();
            assert!(
                url.starts_with("https://auth.example.com/"),
                "{field}: {url}"
            );
        }
        assert_eq!(doc["delivery_methods_supported"], json!([PUSH, POLL]));
    }
}
