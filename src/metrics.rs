//! Counters and a latency histogram for operators, served at `GET /metrics`
//! in the Prometheus text format.

use std::{
    collections::HashMap,
    fmt::Write,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Upper bounds (seconds) of the request latency buckets.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Operation names are chosen by clients: past this many distinct ones,
/// the rest are counted as "other" so the metric cannot grow without bound.
const MAX_OPERATIONS: usize = 64;

#[derive(Debug, Default)]
pub struct Metrics {
    pub sign_ins_succeeded: AtomicU64,
    pub sign_ins_failed: AtomicU64,
    pub sign_ins_throttled: AtomicU64,
    pub sessions_revoked: AtomicU64,
    pub maintenance_runs: AtomicU64,
    pub maintenance_failures: AtomicU64,
    pub sessions_deleted: AtomicU64,
    pub audit_events_purged: AtomicU64,
    /// Unix time of the last finished maintenance run.
    pub maintenance_last_run: AtomicU64,
    /// GraphQL operations answered by `graphql::fast`, without the
    /// executor (also counted in the requests by operation).
    pub graphql_fast_answers: AtomicU64,
    requests: Mutex<Requests>,
}

#[derive(Debug, Default)]
struct Requests {
    /// (operation, outcome) → count.
    by_operation: HashMap<(String, &'static str), u64>,
    /// Cumulative counts per bucket, then +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one executed GraphQL operation.
    pub fn observe_request(&self, operation: Option<&str>, ok: bool, elapsed: Duration) {
        let name = match operation {
            Some(name)
                if !name.is_empty()
                    && name.len() <= 64
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                name
            }
            Some(_) => "invalid",
            None => "anonymous",
        };
        let outcome = if ok { "ok" } else { "error" };
        let seconds = elapsed.as_secs_f64();
        let Ok(mut requests) = self.requests.lock() else {
            return;
        };
        let key = if requests.by_operation.len() >= MAX_OPERATIONS
            && !requests
                .by_operation
                .contains_key(&(name.to_owned(), outcome))
        {
            ("other".to_owned(), outcome)
        } else {
            (name.to_owned(), outcome)
        };
        *requests.by_operation.entry(key).or_default() += 1;
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        for bucket in &mut requests.buckets[slot..] {
            *bucket += 1;
        }
        requests.sum_seconds += seconds;
        requests.count += 1;
    }

    /// The text exposition; `active_sessions` is read from the database by
    /// the caller at scrape time.
    pub fn render(&self, active_sessions: Option<u64>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "session_manager_sign_ins_total",
            "Sign-in attempts by outcome",
            "counter",
            &[
                ("{outcome=\"success\"}", load(&self.sign_ins_succeeded)),
                ("{outcome=\"failed\"}", load(&self.sign_ins_failed)),
                ("{outcome=\"throttled\"}", load(&self.sign_ins_throttled)),
            ],
        );
        counter(
            "session_manager_sessions_revoked_total",
            "Sessions ended by revocation or sign-out",
            "counter",
            &[("", load(&self.sessions_revoked))],
        );
        counter(
            "session_manager_graphql_fast_answers_total",
            "GraphQL operations answered without the executor (also counted by operation)",
            "counter",
            &[("", load(&self.graphql_fast_answers))],
        );
        counter(
            "session_manager_maintenance_runs_total",
            "Background maintenance runs",
            "counter",
            &[("", load(&self.maintenance_runs))],
        );
        counter(
            "session_manager_maintenance_failures_total",
            "Maintenance runs that failed",
            "counter",
            &[("", load(&self.maintenance_failures))],
        );
        counter(
            "session_manager_sessions_deleted_total",
            "Ended sessions deleted by retention",
            "counter",
            &[("", load(&self.sessions_deleted))],
        );
        counter(
            "session_manager_audit_events_purged_total",
            "Audit events purged by retention",
            "counter",
            &[("", load(&self.audit_events_purged))],
        );
        counter(
            "session_manager_maintenance_last_run_timestamp_seconds",
            "Unix time of the last maintenance run",
            "gauge",
            &[("", load(&self.maintenance_last_run))],
        );
        if let Some(active) = active_sessions {
            counter(
                "session_manager_active_sessions",
                "Sessions neither expired nor revoked",
                "gauge",
                &[("", active)],
            );
        }

        let Ok(requests) = self.requests.lock() else {
            return out;
        };
        let _ = writeln!(
            out,
            "# HELP session_manager_graphql_requests_total GraphQL operations by name and outcome\n# TYPE session_manager_graphql_requests_total counter"
        );
        let mut rows: Vec<_> = requests.by_operation.iter().collect();
        rows.sort();
        for ((operation, outcome), value) in rows {
            let _ = writeln!(
                out,
                "session_manager_graphql_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {value}"
            );
        }
        let name = "session_manager_graphql_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to execute a GraphQL operation\n# TYPE {name} histogram"
        );
        for (bound, count) in BUCKETS.iter().zip(requests.buckets.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            requests.buckets[BUCKETS.len()]
        );
        let _ = writeln!(out, "{name}_sum {}", requests.sum_seconds);
        let _ = writeln!(out, "{name}_count {}", requests.count);
        out
    }
}

/// Whether a request may read the metrics: always when no token is
/// configured (`METRICS_TOKEN`), otherwise only with
/// `Authorization: Bearer <token>`. The comparison takes the same time
/// wherever the values differ: both are hashed first (which hides the
/// length too) and the digests compared without an early exit.
pub fn may_read(token: Option<&crate::config::Secret>, authorization: Option<&[u8]>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(presented) = authorization
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, presented)| presented.trim())
    else {
        return false;
    };
    use sha2::{Digest, Sha256};
    let expected = Sha256::digest(token.expose().as_bytes());
    let presented = Sha256::digest(presented.as_bytes());
    expected
        .iter()
        .zip(presented.iter())
        .fold(0u8, |differ, (a, b)| differ | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_token_is_required_only_when_set() {
        let token = crate::config::Secret::new("metrics-token-0123456789");
        let cases: [(Option<&str>, bool); 8] = [
            (None, false),
            (Some("Bearer metrics-token-0123456789"), true),
            (Some("bearer  metrics-token-0123456789 "), true),
            (Some("Bearer metrics-token-012345678"), false),
            (Some("Bearer metrics-token-01234567890"), false),
            (Some("Basic metrics-token-0123456789"), false),
            (Some("metrics-token-0123456789"), false),
            (Some("Bearer "), false),
        ];
        for (header, expected) in cases {
            assert_eq!(
                may_read(Some(&token), header.map(str::as_bytes)),
                expected,
                "{header:?}"
            );
        }
        assert!(may_read(None, None), "no token configured: open");
        assert!(may_read(None, Some(b"Bearer anything")));
    }

    #[test]
    fn requests_are_counted_by_operation_and_bucketed() {
        let m = Metrics::default();
        m.observe_request(Some("ListSessions"), true, Duration::from_millis(3));
        m.observe_request(Some("ListSessions"), false, Duration::from_millis(30));
        m.observe_request(None, true, Duration::from_secs(5));
        m.observe_request(Some("bad name\n{}"), true, Duration::from_millis(1));
        let text = m.render(Some(7));
        assert!(
            text.contains("operation=\"ListSessions\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("operation=\"ListSessions\",outcome=\"error\"} 1"));
        assert!(text.contains("operation=\"anonymous\",outcome=\"ok\"} 1"));
        assert!(
            text.contains("operation=\"invalid\""),
            "client text never reaches a label"
        );
        assert!(text.contains("le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 4"));
        assert!(text.contains("session_manager_active_sessions 7"));
    }

    #[test]
    fn operation_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..200 {
            m.observe_request(Some(&format!("Op{i}")), true, Duration::from_millis(1));
        }
        let text = m.render(None);
        assert!(text.contains("operation=\"other\""));
        assert!(
            text.matches("session_manager_graphql_requests_total{")
                .count()
                <= MAX_OPERATIONS + 1
        );
    }
}
