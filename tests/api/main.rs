//! Integration tests: the real server on 127.0.0.1:0, a fresh database per
//! test (SQLite by default; PostgreSQL when `TEST_DATABASE_URL` is set).

mod api_keys;
mod audit;
mod audit_tamper;
mod auth;
mod cli;
mod config;
mod dashboard;
mod denials;
mod ended;
mod expiry;
mod fast_path;
mod gateway;
mod hardening;
mod helpers;
mod hostile;
mod http;
mod impersonation;
mod introspect;
mod logs;
mod metrics;
mod nginx;
mod policies;
mod reads;
mod resilience;
mod rights;
mod schema;
mod seed;
mod sessions;
mod ssf;
mod subscriptions;
mod throttle;
mod user_lifecycle;
mod users;
mod webhooks;
mod writer;
