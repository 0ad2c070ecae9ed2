//! Expiry is audited: one `session.expired` event per session that ends by
//! idle timeout or absolute expiry, whoever meets it first.

use chrono::{Duration, Utc};
use entity::{session, user::Role};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::json;
use session_manager::{service::session::end_reasons, tasks};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_replica};

const EXPIRED: &str = "session.expired";
const VIEWER: &str = "{ viewer { user { id } } }";

/// Moves a session's expiry into the past: by idle timeout (its absolute
/// expiry still ahead) or by its absolute lifetime.
async fn expire(app: &TestApp, session_id: Uuid, absolute: bool) -> chrono::DateTime<Utc> {
    let at = session_manager::db::now() - Duration::minutes(5);
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(at))
        .col_expr(
            session::Column::LastActiveAt,
            Expr::value(at - Duration::days(7)),
        );
    if absolute {
        update = update.col_expr(session::Column::AbsoluteExpiresAt, Expr::value(at));
    }
    update
        .filter(session::Column::Id.eq(session_id))
        .exec(app.db())
        .await
        .unwrap();
    at
}

/// Waits for the maintenance pass that runs at start-up, so that it cannot
/// record an expiry the test means another path to meet.
async fn after_start_up_maintenance(app: &TestApp) {
    app.count_queries(async {}).await;
}

async fn stored(app: &TestApp, session_id: Uuid) -> session::Model {
    session::Entity::find_by_id(session_id)
        .one(app.db())
        .await
        .unwrap()
        .expect("the session is stored")
}

async fn expired_events_of(app: &TestApp, session_id: Uuid) -> Vec<entity::audit_event::Model> {
    app.events_of_type(EXPIRED)
        .await
        .into_iter()
        .filter(|e| e.session_id == Some(session_id))
        .collect()
}

#[tokio::test]
async fn a_request_meeting_an_idle_session_is_refused_and_records_its_expiry_once() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let expired_at = expire(&app, session_id, false).await;

    for attempt in ["first", "second", "third"] {
        let body = app.gql(Some(&token), VIEWER, json!({})).await;
        assert_error_code(&body, "UNAUTHENTICATED", attempt);
    }

    let events = expired_events_of(&app, session_id).await;
    assert_eq!(events.len(), 1, "one event: {events:?}");
    let event = &events[0];
    assert_eq!(event.user_id, Some(user.id));
    assert_eq!(event.actor_id, None, "nobody caused it");
    assert_eq!(event.metadata["reason"], "idle", "{}", event.metadata);
    assert_eq!(event.metadata["sessionId"], session_id.to_string());
    assert_eq!(event.metadata["userId"], user.id.to_string());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(event.metadata["expiredAt"].as_str().unwrap())
            .unwrap(),
        expired_at,
        "{}",
        event.metadata
    );
    assert_eq!(
        stored(&app, session_id).await.end_reason.as_deref(),
        Some(end_reasons::IDLE_TIMEOUT)
    );
    // Already recorded: the maintenance pass has nothing to add.
    let report = tasks::run_once(&app.state).await;
    assert_eq!(report.expiries_recorded, 0, "{report:?}");
    assert_eq!(expired_events_of(&app, session_id).await.len(), 1);
    // The event is visible to the owner through the API.
    let other = app.sign_in(&user).await;
    let body = app
        .gql(
            Some(&other),
            "{ sessionAudit(filter: { eventType: \"session.expired\" }) { logs { sessionId metadata } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["sessionAudit"]["logs"][0]["sessionId"],
        session_id.to_string(),
        "{body}"
    );
}

#[tokio::test]
async fn once_recorded_an_expired_token_costs_one_read_and_no_write() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    expire(&app, session_id, false).await;
    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "records the expiry");

    let (body, statements) = app
        .count_queries(app.gql(Some(&token), VIEWER, json!({})))
        .await;
    assert_error_code(&body, "UNAUTHENTICATED", "recorded already");
    assert_eq!(statements, 1, "the token check alone");
}

#[tokio::test]
async fn the_maintenance_pass_records_absolute_expiry_of_unused_sessions() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (_, expired) = app.sign_in_as(&user, "client/1").await;
    let (_, idle) = app.sign_in_as(&user, "client/2").await;
    let (live_token, live) = app.sign_in_as(&user, "client/3").await;
    expire(&app, expired, true).await;
    expire(&app, idle, false).await;

    let report = tasks::run_once(&app.state).await;
    assert!(!report.failed, "{report:?}");
    assert_eq!(report.expiries_recorded, 2, "{report:?}");

    let events = expired_events_of(&app, expired).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].metadata["reason"], "absolute");
    assert_eq!(events[0].user_id, Some(user.id));
    assert_eq!(
        stored(&app, expired).await.end_reason.as_deref(),
        Some(end_reasons::EXPIRED)
    );
    let events = expired_events_of(&app, idle).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].metadata["reason"], "idle");

    // The live session is untouched and still works.
    assert!(expired_events_of(&app, live).await.is_empty());
    assert_eq!(stored(&app, live).await.end_reason, None);
    let body = app.gql(Some(&live_token), VIEWER, json!({})).await;
    assert_eq!(
        body["data"]["viewer"]["user"]["id"],
        user.id.to_string(),
        "{body}"
    );

    // A second pass, and a request with the expired token, add nothing.
    let report = tasks::run_once(&app.state).await;
    assert_eq!(report.expiries_recorded, 0, "{report:?}");
    assert_eq!(app.events_of_type(EXPIRED).await.len(), 2);
}

#[tokio::test]
async fn many_concurrent_requests_on_two_replicas_and_maintenance_record_one_event() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let replica = spawn_replica(&app, |_| {}).await;
    after_start_up_maintenance(&replica).await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    expire(&app, session_id, false).await;

    let requests = (0..40).map(|i| {
        let server = if i % 2 == 0 { &app } else { &replica };
        let token = token.clone();
        async move { server.gql(Some(&token), VIEWER, json!({})).await }
    });
    let (bodies, reports) = tokio::join!(
        join_all(requests),
        join_all([tasks::run_once(&app.state), tasks::run_once(&replica.state)]),
    );
    for body in &bodies {
        assert_error_code(body, "UNAUTHENTICATED", "expired token");
    }
    assert!(reports.iter().all(|r| !r.failed), "{reports:?}");

    let events = expired_events_of(&app, session_id).await;
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    assert_eq!(events[0].metadata["reason"], "idle");
}

#[tokio::test]
async fn revoked_sessions_are_never_recorded_as_expired() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let body = app
        .gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(body["data"]["signOut"], true, "{body}");
    // Its expiry passes after the revocation.
    expire(&app, session_id, true).await;

    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "revoked and expired");
    let report = tasks::run_once(&app.state).await;
    assert_eq!(report.expiries_recorded, 0, "{report:?}");
    assert!(app.events_of_type(EXPIRED).await.is_empty());
    assert_eq!(stored(&app, session_id).await.end_reason, None);
}

#[tokio::test]
async fn the_maintenance_query_reads_the_unrecorded_expiry_index_without_sorting() {
    use sea_orm::{ConnectionTrait, DatabaseBackend, QueryTrait, Statement};
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let db = app.db();
    let backend = db.get_database_backend();
    let query =
        session_manager::service::session::unrecorded_expired_query(Utc::now()).build(backend);
    let plan = match backend {
        DatabaseBackend::Postgres => {
            // PostgreSQL plans by statistics: give it a table as in
            // production, live sessions and ended ones recorded already,
            // and the statistics of it.
            let owner = app.create_user(Role::User).await;
            for (offset, expires, end_reason) in [
                (0, "now() + interval '1 day'", "NULL"),
                (1_000_000, "now() - interval '1 day'", "'expired'"),
            ] {
                db.execute_unprepared(&format!(
                    "INSERT INTO sessions (id, token_hash, token_prefix, user_id, created_at, \
                     last_active_at, expires_at, absolute_expires_at, end_reason) \
                     SELECT gen_random_uuid(), md5(i::text) || md5((-i)::text), 'smt_test', \
                     '{}', now(), now(), {expires}, now() + interval '30 days', {end_reason} \
                     FROM generate_series({offset} + 1, {offset} + 20000) AS i",
                    owner.id
                ))
                .await
                .unwrap();
            }
            db.execute_unprepared("ANALYZE sessions").await.unwrap();
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN {}", query.sql),
                    query.values.clone().unwrap(),
                ))
                .await
                .unwrap();
            rows.iter()
                .map(|row| row.try_get_by_index::<String>(0).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => {
            let rows = db
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    format!("EXPLAIN QUERY PLAN {}", query.sql),
                    query.values.clone().unwrap(),
                ))
                .await
                .unwrap();
            rows.iter()
                .map(|row| row.try_get_by_index::<String>(3).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(plan.contains("ix_sessions_unrecorded_expiry"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
    assert!(!plan.contains("Sort"), "no sort: {plan}");
}

#[tokio::test]
async fn sessions_that_expired_before_the_upgrade_are_marked_without_events() {
    use migration::{Migrator, MigratorTrait};
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (_, idle) = app.sign_in_as(&user, "client/1").await;
    let (_, expired) = app.sign_in_as(&user, "client/2").await;
    let (_, live) = app.sign_in_as(&user, "client/3").await;
    expire(&app, idle, false).await;
    expire(&app, expired, true).await;

    // Back to the schema before this migration (undoing the later ones
    // first, however many there are now), and up again.
    let this_and_later = Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261201_000002_session_expiry")
        .expect("the migration is listed")
        + 1;
    Migrator::down(app.db(), Some(this_and_later as u32))
        .await
        .unwrap();
    Migrator::up(app.db(), None).await.unwrap();

    assert_eq!(
        stored(&app, idle).await.end_reason.as_deref(),
        Some(end_reasons::IDLE_TIMEOUT)
    );
    assert_eq!(
        stored(&app, expired).await.end_reason.as_deref(),
        Some(end_reasons::EXPIRED)
    );
    assert_eq!(stored(&app, live).await.end_reason, None);
    let report = tasks::run_once(&app.state).await;
    assert_eq!(report.expiries_recorded, 0, "{report:?}");
    assert!(app.events_of_type(EXPIRED).await.is_empty());
}

#[tokio::test]
async fn an_expired_session_is_not_deleted_before_its_expiry_is_recorded() {
    let app = spawn_app().await;
    after_start_up_maintenance(&app).await;
    let user = app.create_user(Role::User).await;
    let (_, id) = app.sign_in_as(&user, "laptop").await;
    // Expired long before any retention period, and not recorded yet (a
    // backlog larger than one maintenance pass records).
    let long_ago = Utc::now() - Duration::days(400);
    session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(long_ago))
        .col_expr(session::Column::AbsoluteExpiresAt, Expr::value(long_ago))
        .filter(session::Column::Id.eq(id))
        .exec(app.db())
        .await
        .unwrap();
    let cutoff = Utc::now() - Duration::days(30);
    let deleted =
        session_manager::service::session::delete_ended_before(&app.state.db, cutoff, 100)
            .await
            .unwrap();
    assert_eq!(deleted, 0, "kept until its session.expired is written");
    let recorded =
        session_manager::service::session::record_expired(&app.state.db, Utc::now(), 10, 10)
            .await
            .unwrap();
    assert_eq!(recorded, 1);
    let deleted =
        session_manager::service::session::delete_ended_before(&app.state.db, cutoff, 100)
            .await
            .unwrap();
    assert_eq!(deleted, 1, "then it goes");
    assert_eq!(app.events_of_type("session.expired").await.len(), 1);
}
