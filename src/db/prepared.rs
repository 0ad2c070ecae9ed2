//! Statements built once per backend, run with new values each time.

use sea_orm::{DatabaseBackend, Statement};

/// A statement run on every request whose SQL is built once per backend;
/// only its values change. Building the same SQL text with sea-query on
/// every call cost a tenth of the `viewer` query's CPU (measured).
#[derive(Default)]
pub struct Prepared {
    sqlite: std::sync::OnceLock<Statement>,
    postgres: std::sync::OnceLock<Statement>,
}

impl Prepared {
    pub const fn new() -> Self {
        Self {
            sqlite: std::sync::OnceLock::new(),
            postgres: std::sync::OnceLock::new(),
        }
    }

    /// The statement with its values: `build` makes it with each
    /// parameter's placeholder (first use per backend only), and each
    /// `(placeholder, value)` pair then swaps the value in. Placeholders
    /// must be distinct from each other and from the statement's other
    /// values.
    pub fn statement(
        &self,
        backend: DatabaseBackend,
        build: impl FnOnce(DatabaseBackend) -> Statement,
        params: impl IntoIterator<Item = (sea_orm::Value, sea_orm::Value)>,
    ) -> Statement {
        let template = match backend {
            DatabaseBackend::Postgres => &self.postgres,
            _ => &self.sqlite,
        }
        .get_or_init(|| build(backend));
        let mut statement = template.clone();
        for (placeholder, value) in params {
            if let Some(slot) = statement
                .values
                .iter_mut()
                .flat_map(|values| values.0.iter_mut())
                .find(|slot| **slot == placeholder)
            {
                *slot = value;
            }
        }
        statement
    }
}
