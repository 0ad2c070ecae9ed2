//! Limits checked before a document runs.
//!
//! - **Nesting**, before anything parses it: async-graphql's parser (and
//!   every visitor after it) recurses on nested values, selection sets and
//!   argument lists, so a few thousand `[` in one 6 KB document overflow a
//!   worker's stack and abort the whole process. [`document_nesting`] and
//!   [`json_nesting`] scan the text once, in linear time and constant
//!   stack, and refuse anything nested deeper than [`MAX_NESTING`].
//! - **Cost**: every field selection, aliases and `__typename` included,
//!   fragments expanded where they are spread. async-graphql's own
//!   complexity limit skips `__typename`, so thousands of aliased
//!   `__typename`s would pass it.
//! - **Subscriptions** select exactly one root field (GraphQL spec,
//!   "Single root field"), which async-graphql does not check: 249 aliased
//!   `sessionEvents` would deliver every event 249 times.

mod scan;
mod walk;

pub use scan::{document_nesting, json_nesting};
pub use walk::{Measure, field_count, measure, root_fields};

/// The deepest nesting of `[`, `{` and `(` accepted in a document (more
/// when `MAX_QUERY_DEPTH` asks for it, see [`document_bound`]), and of `[`
/// and `{` in a JSON body (a request's `variables` and `extensions`
/// included). Real documents stay far below; the parser's recursion
/// overflows a worker's stack only thousands of levels down.
pub const MAX_NESTING: usize = 48;

/// The nesting bound for documents: [`MAX_NESTING`], or room for
/// `max_query_depth` selection levels with arguments, whichever is more.
pub fn document_bound(max_query_depth: usize) -> usize {
    MAX_NESTING.max(max_query_depth.saturating_add(16))
}

/// A text nested deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    pub max: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request nests more than {} levels deep (brackets, or fragments spread in fragments)",
            self.max
        )
    }
}
