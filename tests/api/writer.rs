//! The grouped writer (`db::Db::write`): writes that run together commit
//! together, yet one that fails (or panics) undoes only itself.

use entity::audit_event;
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use session_manager::{
    error::AppError,
    service::audit::{self, NewEvent, events, verify_chain},
};

use crate::helpers::spawn_app;

async fn events_with_message(app: &crate::helpers::TestApp, prefix: &str) -> u64 {
    audit_event::Entity::find()
        .filter(audit_event::Column::Message.starts_with(prefix))
        .count(app.db())
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_writes_that_fail_leave_nothing_and_the_rest_commit() {
    let app = spawn_app().await;
    let writer = app.state.db.clone();
    let writes = (0..60).map(|i| {
        let writer = writer.clone();
        async move {
            writer
                .write(move |txn| {
                    Box::pin(async move {
                        let outcome = match i % 3 {
                            0 => "kept",
                            1 => "refused",
                            _ => "panicked",
                        };
                        // Each writes first, then decides.
                        audit::record(
                            txn,
                            NewEvent::success(events::SESSIONS_VIEWED, format!("{outcome} {i}")),
                        )
                        .await?;
                        match outcome {
                            "kept" => Ok(i),
                            "refused" => Err(AppError::bad_input("test", "refused after writing")),
                            _ => panic!("a write that panics after writing"),
                        }
                    })
                })
                .await
        }
    });
    let results = join_all(writes).await;

    for (i, result) in results.iter().enumerate() {
        match (i % 3, result) {
            (0, Ok(value)) => assert_eq!(*value, i),
            (1, Err(AppError::BadInput { .. })) => {}
            (2, Err(AppError::Internal { .. })) => {}
            (_, other) => panic!("write {i}: unexpected {other:?}"),
        }
    }
    assert_eq!(events_with_message(&app, "kept ").await, 20);
    assert_eq!(
        events_with_message(&app, "refused ").await,
        0,
        "a failed write is undone"
    );
    assert_eq!(
        events_with_message(&app, "panicked ").await,
        0,
        "a panicking write is undone"
    );
    let report = verify_chain(app.db()).await.unwrap();
    assert!(
        report.intact,
        "the chain skips the undone events: {report:?}"
    );

    // The writer is still there after all that.
    writer
        .write(|txn| {
            Box::pin(async move {
                audit::record(
                    txn,
                    NewEvent::success(events::SESSIONS_VIEWED, "kept later"),
                )
                .await
            })
        })
        .await
        .expect("later writes still work");
    assert_eq!(events_with_message(&app, "kept later").await, 1);
    assert!(verify_chain(app.db()).await.unwrap().intact);
}
