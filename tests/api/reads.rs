//! The per-request reads: rows decoded by position, and the connections
//! they run on (`db::Reads`).

use chrono::{Duration, TimeZone, Utc};
use entity::{session, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Iterable, QueryFilter, QueryTrait,
    Set, Statement,
};
use session_manager::db::{self, Reads};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// A session with every column set, each timestamp different, so that two
/// columns swapped by position cannot decode to the same model.
fn full_session(user_id: Uuid, impersonator: Uuid) -> session::ActiveModel {
    let at = |minutes: i64| {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + Duration::minutes(minutes)
    };
    session::ActiveModel {
        id: Set(Uuid::new_v4()),
        token_hash: Set("f".repeat(64)),
        token_prefix: Set("smt_abcd".into()),
        user_id: Set(user_id),
        impersonator_id: Set(Some(impersonator)),
        impersonation_reason: Set(Some("support ticket 7".into())),
        impersonator_session_id: Set(Some(Uuid::new_v4())),
        ip_address: Set(Some("192.0.2.9".into())),
        user_agent: Set(Some("agent/1.0".into())),
        created_at: Set(at(1)),
        last_active_at: Set(at(2)),
        expires_at: Set(at(3)),
        absolute_expires_at: Set(at(4)),
        revoked_at: Set(Some(at(5))),
        revoked_by: Set(Some(Uuid::new_v4())),
        revoke_reason: Set(Some("revoked".into())),
        end_reason: Set(Some("idle_timeout".into())),
    }
}

#[tokio::test]
async fn rows_decoded_by_position_equal_seaorm_decoding_by_name() {
    let app = spawn_app().await;
    // The session below ended months ago: the start-up clean-up must not
    // race it away.
    app.after_start_up_maintenance().await;
    let db = app.db();
    let owner = app.create_user(user::Role::User).await;
    let admin = app.create_user(user::Role::Admin).await;
    let full = full_session(owner.id, admin.id).insert(db).await.unwrap();
    let (_, bare_id) = app.sign_in_as(&owner, "agent/2.0").await;

    for id in [full.id, bare_id] {
        let select = session::Entity::find_by_id(id).find_also_related(user::Entity);
        let by_name = select.clone().one(db).await.unwrap().unwrap();
        let row = db
            .query_one_raw(select.build(db.get_database_backend()))
            .await
            .unwrap()
            .unwrap();
        let session = session::Model::from_row_at(&row, 0).unwrap();
        let columns = <session::Entity as EntityTrait>::Column::iter().count();
        let owner = user::Model::from_row_at(&row, columns).unwrap();
        assert_eq!((session, Some(owner)), by_name);
    }
    assert!(full.revoked_at.is_some() && full.impersonator_id.is_some());
}

#[tokio::test]
async fn reads_see_every_committed_write_at_once() {
    let app = spawn_app().await;
    let reads = app.state.db.reads();
    let user = app.create_user(user::Role::User).await;
    let (_, id) = app.sign_in_as(&user, "agent/1.0").await;
    let select = || {
        session::Entity::find()
            .filter(session::Column::Id.eq(id))
            .build(reads.get_database_backend())
    };
    for round in 0..20 {
        let revoked_at = db::now() + Duration::seconds(round);
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, revoked_at.into())
            .filter(session::Column::Id.eq(id))
            .exec(app.db())
            .await
            .unwrap();
        let row = reads.query_one_raw(select()).await.unwrap().unwrap();
        let seen = session::Model::from_row_at(&row, 0).unwrap();
        assert_eq!(seen.revoked_at, Some(revoked_at), "round {round}");
    }
}

#[tokio::test]
async fn reads_dropped_midway_leave_the_connections_usable() {
    let app = spawn_app().await;
    let reads = app.state.db.reads();
    let user = app.create_user(user::Role::User).await;
    for _ in 0..5 {
        app.sign_in_as(&user, "agent/1.0").await;
    }
    let all = || {
        session::Entity::find()
            .filter(session::Column::UserId.eq(user.id))
            .build(reads.get_database_backend())
    };
    for _ in 0..50 {
        // Polled once, then dropped while the statement runs.
        let _ = tokio::time::timeout(std::time::Duration::ZERO, reads.query_all_raw(all())).await;
        let rows = reads.query_all_raw(all()).await.unwrap();
        assert_eq!(rows.len(), 5);
    }
}

#[tokio::test]
async fn an_in_memory_database_is_read_through_its_pool() {
    // Its own connections would each open an empty database of their own.
    let db = db::connect("sqlite::memory:").await.unwrap();
    db::migrate(&db).await.unwrap();
    let reads = Reads::new(db.clone()).await.unwrap();
    let rows = reads
        .query_all_raw(user::Entity::find().build(reads.get_database_backend()))
        .await
        .expect("the tables are there");
    assert!(rows.is_empty());
}

#[tokio::test]
async fn a_failed_read_is_an_error_and_the_next_reads_still_work() {
    let app = spawn_app().await;
    let reads = app.state.db.reads();
    let backend = reads.get_database_backend();
    let user = app.create_user(user::Role::User).await;
    for _ in 0..5 {
        let failed = reads
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT * FROM no_such_table",
            ))
            .await;
        assert!(failed.is_err(), "{failed:?}");
        let rows = reads
            .query_all_raw(
                user::Entity::find()
                    .filter(user::Column::Id.eq(user.id))
                    .build(backend),
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
    }
}

#[tokio::test]
async fn closing_the_reads_and_the_pool_closes_the_database_files_cleanly() {
    // SQLite removes the write-ahead log when its last connection closes:
    // a read connection left open would keep it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reads.db");
    let db = db::connect(&format!("sqlite://{}?mode=rwc", file.display()))
        .await
        .unwrap();
    db::migrate(&db).await.unwrap();
    let reads = Reads::new(db.clone()).await.unwrap();
    reads
        .query_all_raw(user::Entity::find().build(reads.get_database_backend()))
        .await
        .unwrap();
    let wal = dir.path().join("reads.db-wal");
    assert!(wal.exists(), "the database is in WAL mode");
    reads.close().await;
    db.close().await.unwrap();
    assert!(!wal.exists(), "every connection closed");
}
