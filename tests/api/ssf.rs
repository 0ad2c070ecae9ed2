//! OpenID Shared Signals: the transmitter's metadata and JWK Set as a
//! receiver reads them from the running server, and SETs signed with the
//! server's key checked by PyJWT (PyPI `pyjwt[crypto]`, run as
//! `tests/api/verify_sets.py`), a standard JOSE library, against the JWK
//! Set fetched over HTTP — not by the server's code. Without the library
//! the checks say so and are skipped, except under CI (`CI` set), where
//! the tests fail (`.ci/run` installs it).

use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use entity::{user, user::Role};
use sea_orm::EntityTrait;
use session_manager::service::ssf::{self, set};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_replica};

async fn get_json(app: &TestApp, path: &str) -> (reqwest::StatusCode, String, Value) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.json().await.unwrap())
}

fn key_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[tokio::test]
async fn no_configuration_document_is_served_before_streams_can_be_managed() {
    // It would name stream-management endpoints that do not answer yet.
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/.well-known/ssf-configuration", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_under_its_rfc_7638_thumbprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_in(dir.path(), "keys/ssf.pem");
    let app = spawn_app_with(|c| c.ssf_signing_key = Some(path.clone())).await;
    let (status, kind, jwks) = get_json(&app, "/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/jwk-set+json");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(
        key.get("d").is_none(),
        "no private part is published: {key}"
    );
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(key["kid"], thumbprint.as_str());
    assert_eq!(app.state.ssf_keys.kid(), thumbprint);

    // The key was made, readable by its owner only, and is kept: a second
    // server on the same file (a replica, or a restart) publishes the same.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let replica = spawn_replica(&app, |c| c.ssf_signing_key = Some(path.clone())).await;
    let (_, _, again) = get_json(&replica, "/jwks.json").await;
    assert_eq!(again, jwks);
}

#[tokio::test]
async fn sets_signed_by_the_server_verify_with_pyjwt_and_survive_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = key_in(dir.path(), "old.pem");
    let new_path = key_in(dir.path(), "new.pem");
    let old = spawn_app_with(|c| c.ssf_signing_key = Some(old_path.clone())).await;
    let issuer = old.address.clone();
    let claims = json!({
        "iss": issuer,
        "aud": "https://receiver.test",
        "iat": 1_700_000_000,
        "jti": "a-jti",
        "events": {},
    });
    let signed = old.state.ssf_keys.sign("secevent+jwt", &claims).unwrap();
    let (_, _, jwks) = get_json(&old, "/jwks.json").await;
    let Some(results) = verify(&jwks, &issuer, Some("https://receiver.test"), &[&signed]) else {
        return;
    };
    assert_eq!(results[0]["claims"], claims, "{results:?}");
    assert_eq!(results[0]["header"]["typ"], "secevent+jwt");
    assert_eq!(results[0]["header"]["alg"], "ES256");
    assert_eq!(results[0]["header"]["kid"], old.state.ssf_keys.kid());

    // Tampered claims, another audience or another issuer do not verify.
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    let mut forged = claims.clone();
    forged["jti"] = json!("forged");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    let tampered = parts.join(".");
    let results = verify(&jwks, &issuer, Some("https://receiver.test"), &[&tampered]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    let results = verify(&jwks, &issuer, Some("https://other.test"), &[&signed]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    let results = verify(&jwks, "https://other.test", None, &[&signed]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");

    // Rotated: a server on a new key with the old one listed in
    // SSF_PREVIOUS_KEYS publishes both; what the old key signed still
    // verifies, and so does what the new one signs.
    let rotated = spawn_replica(&old, |c| {
        c.ssf_signing_key = Some(new_path.clone());
        c.ssf_previous_keys = vec![old_path.clone()];
    })
    .await;
    assert_ne!(rotated.state.ssf_keys.kid(), old.state.ssf_keys.kid());
    let fresh = rotated
        .state
        .ssf_keys
        .sign("secevent+jwt", &claims)
        .unwrap();
    let (_, _, both) = get_json(&rotated, "/jwks.json").await;
    let kids: Vec<&str> = both["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [rotated.state.ssf_keys.kid(), old.state.ssf_keys.kid()]
    );
    let results = verify(
        &both,
        &issuer,
        Some("https://receiver.test"),
        &[&signed, &fresh],
    )
    .unwrap();
    assert!(results.iter().all(|r| r["claims"] == claims), "{results:?}");
    // Once the old key is dropped from the list, its SETs no longer verify.
    let dropped = spawn_replica(&old, |c| c.ssf_signing_key = Some(new_path.clone())).await;
    let (_, _, only_new) = get_json(&dropped, "/jwks.json").await;
    let results = verify(
        &only_new,
        &issuer,
        Some("https://receiver.test"),
        &[&signed, &fresh],
    )
    .unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    assert_eq!(results[1]["claims"], claims, "{results:?}");
}

/// The SETs the server would send to a stream (`stream`, for `audience`)
/// for the committed audit events after `after`, signed with its key.
async fn sets_after(app: &TestApp, after: i64, audience: &str, stream: Uuid) -> Vec<String> {
    let issuer = app.address.clone();
    let mut sets = Vec::new();
    for event in app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.seq > after)
    {
        let email = event
            .metadata
            .get("userEmail")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let email = match email {
            Some(email) => Some(email),
            None => match event.user_id {
                Some(id) => user::Entity::find_by_id(id)
                    .one(app.db())
                    .await
                    .unwrap()
                    .map(|u| u.email),
                None => None,
            },
        };
        let subject = set::User {
            email: email.as_deref(),
            external_id: None,
        };
        if let Some(claims) = set::claims(&event, subject, &issuer, audience, stream) {
            sets.push(app.state.ssf_keys.sign(ssf::SET_TYP, &claims).unwrap());
        }
    }
    sets
}

#[tokio::test]
async fn revocations_and_password_changes_make_caep_sets_that_pyjwt_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "ssf.pem");
    let app = spawn_app_with(|c| c.ssf_signing_key = Some(key.clone())).await;
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let start = app.audit_events().await.last().unwrap().seq;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
            json!({ "id": phone }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = app
        .gql(
            Some(&token),
            "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
            json!({ "c": alice.password, "n": "a-new-long-password-1" }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");

    let stream = Uuid::now_v7();
    let sets = sets_after(&app, start, "https://receiver.test", stream).await;
    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) = verify(&jwks, &app.address, Some("https://receiver.test"), &sets) else {
        return;
    };
    let kinds: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r["header"]["typ"], "secevent+jwt", "{r}");
            let events = r["claims"]["events"].as_object().expect("verified");
            assert_eq!(events.len(), 1, "{r}");
            events.keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(
        kinds,
        [ssf::SESSION_REVOKED, ssf::CREDENTIAL_CHANGE],
        "{results:?}"
    );
    let revoked = &results[0]["claims"];
    assert_eq!(revoked["sub_id"]["format"], "complex");
    assert_eq!(revoked["sub_id"]["user"]["email"], alice.email.as_str());
    assert_eq!(revoked["sub_id"]["session"]["id"], phone.to_string());
    assert!(revoked["events"][ssf::SESSION_REVOKED]["event_timestamp"].is_i64());
    let changed = &results[1]["claims"]["events"][ssf::CREDENTIAL_CHANGE];
    assert_eq!(changed["credential_type"], "password");
    assert_eq!(changed["change_type"], "update");
    // The jtis are distinct, and the same again for the same stream.
    let again = sets_after(&app, start, "https://receiver.test", stream).await;
    let again = verify(&jwks, &app.address, Some("https://receiver.test"), &again).unwrap();
    let jtis: Vec<&Value> = results.iter().map(|r| &r["claims"]["jti"]).collect();
    assert_ne!(jtis[0], jtis[1]);
    assert_eq!(
        jtis,
        again
            .iter()
            .map(|r| &r["claims"]["jti"])
            .collect::<Vec<_>>()
    );
}

/// What PyJWT makes of `sets` against `jwks`; `None` when the library is
/// missing outside CI.
pub fn verify(
    jwks: &Value,
    issuer: &str,
    audience: Option<&str>,
    sets: &[impl AsRef<str>],
) -> Option<Vec<Value>> {
    use std::{io::Write, process::Stdio};
    let installed = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PyJWT is missing, and CI is set: SETs must be verified in CI \
                 (.ci/run installs it; pip install 'pyjwt[crypto]')"
            );
        }
        eprintln!("notice: python3 PyJWT is missing; SET verification is skipped");
        return None;
    }
    let sets: Vec<&str> = sets.iter().map(AsRef::as_ref).collect();
    let request = json!({ "jwks": jwks, "issuer": issuer, "audience": audience, "sets": sets });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/verify_sets.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("the verifier's JSON"))
}
