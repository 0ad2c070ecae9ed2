//! Counters for operators, served at `GET /metrics` in the Prometheus
//! text format.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub graphql_requests: AtomicU64,
    pub sign_ins_succeeded: AtomicU64,
    pub sign_ins_failed: AtomicU64,
    pub maintenance_runs: AtomicU64,
    pub maintenance_failures: AtomicU64,
    pub sessions_deleted: AtomicU64,
    pub audit_events_purged: AtomicU64,
    /// Unix time of the last finished maintenance run.
    pub maintenance_last_run: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "session_manager_graphql_requests_total",
                "counter",
                "GraphQL requests served",
                &self.graphql_requests,
            ),
            (
                "session_manager_sign_ins_total{outcome=\"success\"}",
                "counter",
                "Sign-in attempts",
                &self.sign_ins_succeeded,
            ),
            (
                "session_manager_sign_ins_total{outcome=\"failed\"}",
                "",
                "",
                &self.sign_ins_failed,
            ),
            (
                "session_manager_maintenance_runs_total",
                "counter",
                "Background maintenance runs",
                &self.maintenance_runs,
            ),
            (
                "session_manager_maintenance_failures_total",
                "counter",
                "Background maintenance runs that failed",
                &self.maintenance_failures,
            ),
            (
                "session_manager_sessions_deleted_total",
                "counter",
                "Ended sessions deleted by retention",
                &self.sessions_deleted,
            ),
            (
                "session_manager_audit_events_purged_total",
                "counter",
                "Audit events purged by retention",
                &self.audit_events_purged,
            ),
            (
                "session_manager_maintenance_last_run_timestamp_seconds",
                "gauge",
                "Unix time of the last maintenance run",
                &self.maintenance_last_run,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let base = name.split('{').next().unwrap_or(name);
            if !kind.is_empty() {
                out.push_str(&format!("# HELP {base} {help}\n# TYPE {base} {kind}\n"));
            }
            out.push_str(&format!("{name} {}\n", value.load(Ordering::Relaxed)));
        }
        out
    }
}
