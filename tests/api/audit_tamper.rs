//! Signed checkpoints against a database administrator: the three
//! rewrites of issue 20, each done the way someone with write access to
//! the database (and the means to recompute SHA-256) would do it, must be
//! found by `auditChain`, `audit verify --public-key` and, once the
//! checkpoints in the database are gone too, `audit verify --checkpoint`
//! with a checkpoint kept elsewhere. Before checkpoints, the hash-chain
//! walk alone passed all three.

use std::path::{Path, PathBuf};

use entity::{audit_chain, audit_checkpoint, audit_event, user::Role};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};
use serde_json::{Value, json};
use session_manager::service::audit::{self as audits, NewEvent, event_hash};

use crate::{
    cli::text,
    helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with},
};

const CHAIN: &str = "{ auditChain { intact checked firstBrokenSeq problem checkpointsChecked coveredSeq unsignedEvents } }";
const CHECKPOINTS: &str = "query($limit: Int! = 100, $offset: Int! = 0) { auditCheckpoints(limit: $limit, offset: $offset) { checkpoints { kind seq hash anchorSeq anchorHash createdAt keyId signature } pagination { total limit offset hasMore } } }";

/// An app with an owner signed in and `n` events appended after that.
async fn app_with_events(n: usize) -> (TestApp, String) {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let token = app.sign_in(&owner).await;
    seed(&app, n).await;
    (app, token)
}

async fn seed(app: &TestApp, n: usize) {
    for i in 0..n {
        audits::record_alone(
            &app.state.db,
            NewEvent::success("test.event", format!("event {i}")).meta("i", i),
        )
        .await
        .unwrap();
    }
}

/// The third attack of issue 20, with the database's keys: event 8
/// edited, event 9 deleted, every later event moved up a place and the
/// chain recomputed from 8 on (SHA-256 is public), the head moved to the
/// new last event.
async fn rewrite_from_event_8(app: &TestApp) {
    let events = app.audit_events().await;
    let mut prev = events[6].hash.clone();
    let mut rewritten: Vec<audit_event::Model> = Vec::new();
    for event in events.iter().filter(|e| e.seq >= 8 && e.seq != 9) {
        let mut event = event.clone();
        if event.seq == 8 {
            event.message = "nothing happened".into();
        } else {
            event.seq -= 1;
        }
        event.prev_hash = prev;
        event.hash = event_hash(&event);
        prev = event.hash.clone();
        rewritten.push(event);
    }
    exec(app, "DELETE FROM audit_events WHERE seq >= 8").await;
    for event in &rewritten {
        audit_event::ActiveModel::from(event.clone())
            .insert(app.db())
            .await
            .unwrap();
    }
    set_head(app, rewritten.last().unwrap()).await;
}

/// Runs the binary on `app`'s database and key; (success, stdout, stderr).
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = app.command().args(args).output().await.unwrap();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// What the operator keeps outside: the public key and a checkpoint of
/// the chain as it is now, each in a file.
struct KeptOutside {
    _dir: tempfile::TempDir,
    public_key: PathBuf,
    checkpoint: PathBuf,
    signed: Value,
}

async fn keep_outside(app: &TestApp) -> KeptOutside {
    let dir = tempfile::tempdir().unwrap();
    let (ok, key, err) = cli(app, &["audit", "public-key"]).await;
    assert!(ok && key.starts_with("ed25519:"), "{key}{err}");
    let (ok, checkpoint, err) = cli(app, &["audit", "checkpoint"]).await;
    assert!(ok, "{err}");
    let signed: Value = serde_json::from_str(checkpoint.trim()).expect("one line of JSON");
    let public_key = dir.path().join("audit.pub");
    std::fs::write(&public_key, key).unwrap();
    let path = dir.path().join("checkpoint.json");
    std::fs::write(&path, checkpoint).unwrap();
    KeptOutside {
        _dir: dir,
        public_key,
        checkpoint: path,
        signed,
    }
}

async fn verify_with(app: &TestApp, key: &Path, checkpoint: Option<&Path>) -> (bool, String) {
    let key = key.to_str().unwrap();
    let mut args = vec!["audit", "verify", "--public-key", key];
    if let Some(checkpoint) = checkpoint {
        args.extend(["--checkpoint", checkpoint.to_str().unwrap()]);
    }
    let (ok, out, err) = cli(app, &args).await;
    (ok, format!("{out}{err}"))
}

async fn chain(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), CHAIN, json!({})).await;
    assert!(body["data"]["auditChain"].is_object(), "{body}");
    body["data"]["auditChain"].clone()
}

async fn exec(app: &TestApp, sql: &str) {
    let backend = app.db().get_database_backend();
    app.db()
        .execute_raw(Statement::from_string(backend, sql.to_owned()))
        .await
        .unwrap();
}

async fn head(app: &TestApp) -> audit_chain::Model {
    audit_chain::Entity::find_by_id(audit_chain::CHAIN_ID)
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
}

async fn set_head(app: &TestApp, last: &audit_event::Model) {
    exec(
        app,
        &format!(
            "UPDATE audit_chain SET head_seq = {}, head_hash = '{}'",
            last.seq, last.hash
        ),
    )
    .await;
}

/// The untouched chain passes every check, and the checkpoint covers it
/// all but its own announcement.
async fn assert_intact_before(app: &TestApp, token: &str, kept: &KeptOutside) {
    let report = chain(app, token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["coveredSeq"], kept.signed["seq"], "{report}");
    assert_eq!(report["unsignedEvents"], 1, "the announcement: {report}");
    let (ok, out) = verify_with(app, &kept.public_key, Some(&kept.checkpoint)).await;
    assert!(ok && out.contains("intact"), "{out}");
}

/// Found by the server and by `verify --public-key` while the
/// checkpoints are in the database; then, with them deleted too, by
/// `verify --checkpoint` with the one kept outside.
async fn assert_found(app: &TestApp, token: &str, kept: &KeptOutside, attack: &str) {
    let report = chain(app, token).await;
    assert_eq!(report["intact"], false, "{attack}: auditChain: {report}");
    let (ok, out) = verify_with(app, &kept.public_key, None).await;
    assert!(!ok && out.contains("broken"), "{attack}: verify: {out}");

    exec(app, "DELETE FROM audit_checkpoints").await;
    // With nothing signed to hold it to, the hash-chain walk (all there
    // was before checkpoints) passes the rewrite.
    let walk = audits::verify_chain(app.db()).await.unwrap();
    assert!(walk.intact, "{attack}: the walk alone: {walk:?}");
    let (ok, out) = verify_with(app, &kept.public_key, Some(&kept.checkpoint)).await;
    assert!(
        !ok && out.contains("broken"),
        "{attack}: verify --checkpoint, the database's checkpoints deleted: {out}"
    );
}

#[tokio::test]
async fn deleting_the_newest_events_and_moving_the_head_is_found() {
    let (app, token) = app_with_events(20).await;
    let kept = keep_outside(&app).await;
    assert_intact_before(&app, &token, &kept).await;

    let events = app.audit_events().await;
    let newest = &events[events.len() - 3..];
    for event in newest {
        exec(
            &app,
            &format!("DELETE FROM audit_events WHERE seq = {}", event.seq),
        )
        .await;
    }
    set_head(&app, &events[events.len() - 4]).await;
    // What the walk alone made of it: the hash chain from the anchor to
    // the head is whole.
    let events_left = app.audit_events().await;
    assert!(events_left.windows(2).all(|w| w[1].prev_hash == w[0].hash));

    let report = chain(&app, &token).await;
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("newest events were deleted")),
        "{report}"
    );
    assert_eq!(report["firstBrokenSeq"], events[events.len() - 4].seq + 1);
    assert_found(&app, &token, &kept, "delete the newest 3").await;
}

#[tokio::test]
async fn deleting_the_oldest_events_and_moving_the_anchor_is_found() {
    let (app, token) = app_with_events(20).await;
    let kept = keep_outside(&app).await;
    assert_intact_before(&app, &token, &kept).await;

    let events = app.audit_events().await;
    let tenth = &events[9];
    exec(
        &app,
        &format!("DELETE FROM audit_events WHERE seq <= {}", tenth.seq),
    )
    .await;
    exec(
        &app,
        &format!(
            "UPDATE audit_chain SET anchor_seq = {}, anchor_hash = '{}'",
            tenth.seq, tenth.hash
        ),
    )
    .await;

    let report = chain(&app, &token).await;
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("oldest events were deleted")),
        "{report}"
    );
    assert_found(&app, &token, &kept, "delete the oldest 10").await;
    // Not even the checkpoints' absence hides it: no signed purge record
    // says why the chain starts after seq 10.
    let (ok, out) = verify_with(&app, &kept.public_key, None).await;
    assert!(!ok && out.contains("no signed purge record"), "{out}");
}

#[tokio::test]
async fn editing_an_event_deleting_the_next_and_recomputing_the_chain_is_found() {
    let (app, token) = app_with_events(20).await;
    let kept = keep_outside(&app).await;
    assert_intact_before(&app, &token, &kept).await;

    // Event 8 edited, event 9 gone, every later one moved up a place and
    // the chain recomputed from 8 on, as anyone can: SHA-256 is public.
    rewrite_from_event_8(&app).await;
    // The hash chain itself is whole: every hash recomputed and linked.
    let events_left = app.audit_events().await;
    assert!(events_left.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert!(events_left.iter().all(|e| event_hash(e) == e.hash));

    let report = chain(&app, &token).await;
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("is not the event the checkpoint")),
        "{report}"
    );
    assert_eq!(report["firstBrokenSeq"], kept.signed["seq"]);
    assert_found(&app, &token, &kept, "edit 8, delete 9, recompute").await;
}

#[tokio::test]
async fn a_checkpoint_forged_with_another_key_or_altered_is_refused() {
    let (app, token) = app_with_events(5).await;
    let kept = keep_outside(&app).await;
    // Someone else's key signs a checkpoint of the chain as it is now.
    seed(&app, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let other_key = dir.path().join("other.key");
    let forged = app
        .command()
        .env("AUDIT_SIGNING_KEY", &other_key)
        .args(["audit", "checkpoint"])
        .output()
        .await
        .unwrap();
    assert!(forged.status.success(), "{}", text(&forged.stderr));
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], false, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("not among the public keys")),
        "{report}"
    );
    let (ok, out) = verify_with(&app, &kept.public_key, None).await;
    assert!(!ok && out.contains("not among"), "{out}");
    exec(&app, "DELETE FROM audit_checkpoints WHERE key_id <> (SELECT key_id FROM audit_checkpoints ORDER BY seq LIMIT 1)").await;
    assert_eq!(chain(&app, &token).await["intact"], true);

    // A signed field changed: the signature no longer verifies.
    exec(&app, "UPDATE audit_checkpoints SET seq = seq - 1").await;
    let report = chain(&app, &token).await;
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("does not verify")),
        "{report}"
    );
    let mut altered = kept.signed.clone();
    altered["hash"] = json!("0".repeat(64));
    std::fs::write(&kept.checkpoint, altered.to_string()).unwrap();
    exec(&app, "DELETE FROM audit_checkpoints").await;
    let (ok, out) = verify_with(&app, &kept.public_key, Some(&kept.checkpoint)).await;
    assert!(!ok && out.contains("given checkpoint"), "{out}");
}

#[tokio::test]
async fn the_unsigned_tail_is_not_covered_and_is_reported_as_such() {
    let (app, token) = app_with_events(5).await;
    let kept = keep_outside(&app).await;
    seed(&app, 4).await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(
        report["unsignedEvents"], 5,
        "4 and the announcement: {report}"
    );
    let (ok, out) = verify_with(&app, &kept.public_key, None).await;
    assert!(
        ok && out.contains("5 events since the last checkpoint are not signed"),
        "{out}"
    );
    // Deleting from the tail (here the newest 3) is what the hash chain
    // alone cannot tell, and no checkpoint speaks for it yet.
    let events = app.audit_events().await;
    exec(
        &app,
        &format!(
            "DELETE FROM audit_events WHERE seq > {}",
            events[events.len() - 4].seq
        ),
    )
    .await;
    set_head(&app, &events[events.len() - 4]).await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["unsignedEvents"], 2, "{report}");
}

#[tokio::test]
async fn a_purge_is_a_signed_record_and_deleting_that_record_is_found() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    seed(&app, 12).await;
    let first = keep_outside(&app).await;
    let cutoff = session_manager::db::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let token = app.sign_in(&owner).await;
    seed(&app, 3).await;
    let old = app
        .audit_events()
        .await
        .iter()
        .filter(|e| e.created_at < cutoff)
        .count() as u64;

    let purged = audits::purge_before(&app.state.db, &app.state.signer, cutoff, 5)
        .await
        .unwrap();
    assert_eq!(purged, old);
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], true, "{report}");
    // The checkpoint kept from before the purge still verifies: signed
    // purge records lead from its anchor to today's.
    let (ok, out) = verify_with(&app, &first.public_key, Some(&first.checkpoint)).await;
    assert!(ok, "{out}");

    let body = app.gql(Some(&token), CHECKPOINTS, json!({})).await;
    let listed = body["data"]["auditCheckpoints"]["checkpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    let purges: Vec<&Value> = listed.iter().filter(|c| c["kind"] == "PURGE").collect();
    assert_eq!(purges.len(), 3, "batches of 5 over {old}: {body}");
    let anchor = head(&app).await;
    assert_eq!(purges[0]["seq"], anchor.anchor_seq, "newest first");
    assert_eq!(purges[0]["hash"], anchor.anchor_hash.as_str());
    assert_eq!(purges.last().unwrap()["anchorSeq"], 0);
    let announced = app.events_of_type("audit.purged").await;
    assert_eq!(announced.len(), 3);
    assert_eq!(announced[0].metadata["checkpoint"]["kind"], "purge");

    // A purge record gone: the records no longer meet.
    exec(
        &app,
        &format!(
            "DELETE FROM audit_checkpoints WHERE kind = 'purge' AND seq = {}",
            purges[1]["seq"]
        ),
    )
    .await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], false, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .is_some_and(|p| p.contains("purge record is missing")),
        "{report}"
    );
}

#[tokio::test]
async fn the_server_signs_checkpoints_on_its_own_and_announces_them() {
    // Every 3 events, or 1 s after the first unsigned one (events made
    // before the server's event tail started are signed that way).
    let app = spawn_app_with(|config| {
        config.audit_checkpoint_every = 3;
        config.audit_checkpoint_interval = std::time::Duration::from_secs(1);
    })
    .await;
    seed(&app, 3).await;
    let last_seeded = app.audit_events().await.last().unwrap().seq;
    let mut stored = Vec::new();
    for _ in 0..1_500 {
        stored = audits::all_checkpoints(app.db()).await.unwrap();
        if stored.last().is_some_and(|c| c.seq >= last_seeded) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        stored.last().is_some_and(|c| c.seq >= last_seeded),
        "a checkpoint covers the 3 events: {stored:?}"
    );
    let announced: Vec<audits::Checkpoint> = app
        .events_of_type("audit.checkpoint")
        .await
        .iter()
        .map(|e| serde_json::from_value(e.metadata["checkpoint"].clone()).unwrap())
        .collect();
    assert_eq!(announced, stored, "each checkpoint is announced once");
    for checkpoint in &stored {
        assert!(checkpoint.verify(&app.state.keyring).is_ok());
    }
}

#[tokio::test]
async fn only_owners_list_checkpoints_and_paging_is_bounded() {
    let (app, token) = app_with_events(3).await;
    for _ in 0..3 {
        seed(&app, 1).await;
        let (ok, _, err) = cli(&app, &["audit", "checkpoint"]).await;
        assert!(ok, "{err}");
    }
    let body = app
        .gql(Some(&token), CHECKPOINTS, json!({ "limit": 2 }))
        .await;
    let page = &body["data"]["auditCheckpoints"];
    assert_eq!(page["pagination"]["total"], 3, "{body}");
    assert_eq!(page["pagination"]["hasMore"], true);
    let seqs: Vec<i64> = page["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs[0] > seqs[1], "newest first: {seqs:?}");
    let body = app
        .gql(
            Some(&token),
            CHECKPOINTS,
            json!({ "limit": 2, "offset": 2 }),
        )
        .await;
    assert_eq!(
        body["data"]["auditCheckpoints"]["pagination"]["hasMore"],
        false
    );

    for (variables, why) in [
        (json!({ "limit": 0 }), "limit 0"),
        (json!({ "limit": 501 }), "limit over 500"),
        (json!({ "offset": -1 }), "negative offset"),
    ] {
        let body = app.gql(Some(&token), CHECKPOINTS, variables).await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
    }
    for role in [Role::User, Role::Admin] {
        let user = app.create_user(role).await;
        let their = app.sign_in(&user).await;
        let body = app.gql(Some(&their), CHECKPOINTS, json!({})).await;
        assert_error_code(&body, "FORBIDDEN", role.as_str());
        let denied = app.events_of_type("access.denied").await;
        assert_eq!(denied.last().unwrap().actor_id, Some(user.id));
    }
    let body = app.gql(None, CHECKPOINTS, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "anonymous");
}

#[tokio::test]
async fn the_command_line_signs_exports_and_refuses_what_it_cannot_check() {
    let (app, _token) = app_with_events(4).await;
    let kept = keep_outside(&app).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&app.signing_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is the owner's only");
    }
    // Nothing new: the same checkpoint again.
    let (ok, again, _) = cli(&app, &["audit", "checkpoint"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), kept.signed);
    // `audit verify` with no --public-key uses AUDIT_SIGNING_KEY's.
    let (ok, out, _) = cli(&app, &["audit", "verify"]).await;
    assert!(ok && out.contains("1 signed records verified"), "{out}");

    let (ok, exported, _) = cli(&app, &["audit", "export", "--checkpoints"]).await;
    assert!(ok);
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![kept.signed.clone()]);
    // The ordinary export carries the announcement, with the statement.
    let (ok, events, _) = cli(&app, &["audit", "export"]).await;
    assert!(ok);
    let announcement = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["eventType"] == "audit.checkpoint")
        .expect("the checkpoint is announced in the log");
    assert_eq!(announcement["metadata"]["checkpoint"], kept.signed);

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let missing = dir.path().join("missing");
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["audit", "verify", "--public-key", garbage.to_str().unwrap()],
            "not a public key",
            "a key file with no key in it",
        ),
        (
            &["audit", "verify", "--public-key", empty.to_str().unwrap()],
            "holds no public key",
            "an empty keyring",
        ),
        (
            &["audit", "verify", "--public-key", missing.to_str().unwrap()],
            "cannot read",
            "a missing key file",
        ),
        (
            &[
                "audit",
                "verify",
                "--public-key",
                kept.public_key.to_str().unwrap(),
                "--checkpoint",
                garbage.to_str().unwrap(),
            ],
            "not a checkpoint",
            "a checkpoint file that is not one",
        ),
        (
            &["audit", "export", "--checkpoints", "--format", "csv"],
            "cannot be used with",
            "checkpoints are JSON only",
        ),
    ];
    for (args, expected, why) in cases {
        let (ok, out, err) = cli(&app, args).await;
        assert!(!ok, "{why}: should fail: {out}");
        assert!(err.contains(expected), "{why}: {err}");
    }
    // --checkpoint needs a key to check it with.
    let out = app
        .command()
        .env("AUDIT_SIGNING_KEY", dir.path().join("none.key"))
        .args(["audit", "verify", "--checkpoint"])
        .arg(&kept.checkpoint)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs --public-key"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn after_a_key_rotation_old_checkpoints_verify_with_the_old_public_key() {
    let (app, _token) = app_with_events(3).await;
    let old = keep_outside(&app).await;
    // The new key signs from now on.
    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("new.key");
    seed(&app, 2).await;
    let with_new = async |args: &[&str]| {
        let out = app
            .command()
            .env("AUDIT_SIGNING_KEY", &new_key)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    with_new(&["audit", "checkpoint"]).await;
    let new_public = with_new(&["audit", "public-key"]).await;
    let new_pub = dir.path().join("new.pub");
    std::fs::write(&new_pub, &new_public).unwrap();

    let (ok, out) = verify_with(&app, &new_pub, None).await;
    assert!(!ok && out.contains("not among"), "the new key alone: {out}");
    let keyring = dir.path().join("keyring.pub");
    let old_public = std::fs::read_to_string(&old.public_key).unwrap();
    std::fs::write(&keyring, format!("{old_public}{new_public}")).unwrap();
    let (ok, out) = verify_with(&app, &keyring, Some(&old.checkpoint)).await;
    assert!(
        ok && out.contains("signed records verified"),
        "a keyring: {out}"
    );
    let (ok, out, err) = cli(
        &app,
        &[
            "audit",
            "verify",
            "--public-key",
            old.public_key.to_str().unwrap(),
            "--public-key",
            new_pub.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "--public-key twice: {out}{err}");
}

/// The server never vouches for a rewritten chain: after the newest
/// events are deleted and the head moved, or the chain recomputed past an
/// edit, and new events appended, `audit checkpoint` refuses to sign and
/// stores nothing; an untouched chain is signed as before.
#[tokio::test]
async fn no_checkpoint_is_signed_over_a_chain_rewritten_since_the_last() {
    let (app, _token) = app_with_events(12).await;
    let _kept = keep_outside(&app).await;
    let stored = || async {
        audit_checkpoint::Entity::find()
            .filter(audit_checkpoint::Column::Kind.eq(audit_checkpoint::CHECKPOINT))
            .count(app.db())
            .await
            .unwrap()
    };
    // Untouched and extended: signed.
    seed(&app, 3).await;
    let (ok, _, err) = cli(&app, &["audit", "checkpoint"]).await;
    assert!(ok, "{err}");
    let before = stored().await;
    assert_eq!(before, 2);

    // The newest 3 deleted (the last checkpoint among them), the head
    // moved, new events appended.
    let events = app.audit_events().await;
    for event in &events[events.len() - 3..] {
        exec(
            &app,
            &format!("DELETE FROM audit_events WHERE seq = {}", event.seq),
        )
        .await;
    }
    set_head(&app, &events[events.len() - 4]).await;
    // Past the last checkpoint's position again, so one is due.
    seed(&app, 5).await;
    let (ok, out, err) = cli(&app, &["audit", "checkpoint"]).await;
    assert!(!ok, "signed over deleted events: {out}");
    assert!(err.contains("does not extend the last checkpoint"), "{err}");
    assert_eq!(stored().await, before, "nothing stored");

    // Event 8 edited, event 9 deleted, the rest recomputed and moved up,
    // the head moved, then new events: refused as well.
    let (app, _token) = app_with_events(20).await;
    let _kept = keep_outside(&app).await;
    rewrite_from_event_8(&app).await;
    seed(&app, 3).await;
    let before = audit_checkpoint::Entity::find()
        .count(app.db())
        .await
        .unwrap();
    let (ok, out, err) = cli(&app, &["audit", "checkpoint"]).await;
    assert!(!ok, "signed over a recomputed chain: {out}");
    assert!(err.contains("does not extend the last checkpoint"), "{err}");
    assert_eq!(
        audit_checkpoint::Entity::find()
            .count(app.db())
            .await
            .unwrap(),
        before
    );
}
