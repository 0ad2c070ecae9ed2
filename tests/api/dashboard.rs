//! The web dashboard: served from the binary at `/` under a strict policy.
//! (Its behaviour in a browser is tested end to end in `e2e/`.)

use reqwest::{StatusCode, header};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_is_served_at_the_root_with_a_strict_policy() {
    let app = spawn_app().await;
    let response = get(&app, "/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    assert!(!page.contains("style="), "no inline style");
    assert!(!page.contains("https://"), "nothing from elsewhere");
}

#[tokio::test]
async fn every_dashboard_module_and_style_sheet_is_served() {
    let app = spawn_app().await;
    let page = get(&app, "/").await.text().await.unwrap();
    let mut pending: Vec<String> = page
        .split('"')
        .filter(|part| part.starts_with("/app/"))
        .map(str::to_owned)
        .collect();
    assert!(pending.len() >= 2, "the page names its assets: {pending:?}");
    let mut seen = Vec::new();
    // Follow the modules' own imports too.
    while let Some(path) = pending.pop() {
        if seen.contains(&path) {
            continue;
        }
        let response = get(&app, &path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(content_type.starts_with(expected), "{path}: {content_type}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("innerHTML") && !body.contains("eval("),
            "{path} builds the DOM without parsing HTML"
        );
        for part in body.split('\'') {
            if let Some(module) = part.strip_prefix("./").filter(|m| m.ends_with(".js")) {
                pending.push(format!("/app/{module}"));
            }
        }
        seen.push(path);
    }
    assert!(seen.len() >= 6, "modules found: {seen:?}");
    assert_eq!(
        get(&app, "/app/nope.js").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_dashboard_is_served_in_production_without_graphiql() {
    let app = spawn_app_with(|config| {
        config.production = true;
        config.graphiql = false;
    })
    .await;
    assert_eq!(get(&app, "/").await.status(), StatusCode::OK);
    assert_eq!(get(&app, "/app/app.js").await.status(), StatusCode::OK);
    assert_eq!(
        get(&app, "/graphiql/init.js").await.status(),
        StatusCode::NOT_FOUND,
        "GraphiQL keeps its own switch"
    );
}

/// The modules under `assets/dashboard/`, by file name, with their source.
fn dashboard_modules() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/dashboard");
    let mut modules: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("assets/dashboard")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "js"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("readable"))
        })
        .collect();
    modules.sort();
    modules
}

#[test]
fn dashboard_views_import_shared_modules_never_another_view() {
    let modules = dashboard_modules();
    // A view is a module that exports a `…View` function; the shell
    // (app.js) routes between them and is none.
    let is_view = |source: &str| {
        source.split("export function ").skip(1).any(|rest| {
            rest.split('(')
                .next()
                .is_some_and(|name| name.ends_with("View"))
        })
    };
    let views: Vec<&str> = modules
        .iter()
        .filter(|(_, source)| is_view(source))
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(views.len() >= 3, "views found: {views:?}");
    for (name, source) in modules
        .iter()
        .filter(|(name, _)| views.contains(&name.as_str()))
    {
        for imported in source
            .split(" from '")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
        {
            let imported = imported.strip_prefix("./").unwrap_or(imported);
            assert!(
                !views.contains(&imported),
                "{name} imports the view {imported}: shared code belongs in a shared module"
            );
        }
    }
}
