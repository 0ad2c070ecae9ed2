//! `GET /metrics`: open unless `METRICS_TOKEN` is set, then only with it.

use reqwest::StatusCode;
use session_manager::config::Secret;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const TOKEN: &str = "metrics-scraper-token-5a9c";

async fn get_metrics(
    app: &TestApp,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, challenge, response.text().await.unwrap())
}

#[tokio::test]
async fn with_a_metrics_token_only_that_bearer_token_reads_the_metrics() {
    let app = spawn_app_with(|config| config.metrics_token = Some(Secret::new(TOKEN))).await;
    let refused = [
        (None, "no Authorization header"),
        (
            Some("Bearer metrics-scraper-token-5a9d".to_owned()),
            "wrong token",
        ),
        (Some(format!("Bearer {TOKEN}x")), "token with a suffix"),
        (
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
            "a prefix of the token",
        ),
        (Some(format!("Basic {TOKEN}")), "another scheme"),
        (Some(TOKEN.to_owned()), "no scheme"),
    ];
    for (authorization, why) in refused {
        let (status, challenge, body) = get_metrics(&app, authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Bearer")),
            "{why}: WWW-Authenticate: {challenge:?}"
        );
        assert!(
            !body.contains("session_manager_"),
            "{why}: metrics leaked: {body}"
        );
    }
    let (status, _, body) = get_metrics(&app, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("session_manager_"), "{body}");
}

#[tokio::test]
async fn without_a_metrics_token_the_metrics_stay_open() {
    let app = spawn_app().await;
    for authorization in [None, Some("Bearer whatever-a-client-sends")] {
        let (status, _, body) = get_metrics(&app, authorization).await;
        assert_eq!(status, StatusCode::OK, "{authorization:?}: {body}");
        assert!(body.contains("session_manager_"), "{body}");
    }
}
