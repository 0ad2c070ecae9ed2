//! How a page of a list shows where it sits: shared by the audit log and
//! the accounts.

use async_graphql::SimpleObject;

/// Where a page sits in the whole result.
#[derive(SimpleObject)]
pub struct Pagination {
    /// How many items (events, users) match the filters.
    pub total: i32,
    /// The page size asked for.
    pub limit: i32,
    /// Items skipped before this page.
    pub offset: i32,
    /// Whether more items follow this page.
    pub has_more: bool,
    /// Pass as `after` for the next page (keyset paging of audit events);
    /// null on the last page, and always null for users.
    pub next_cursor: Option<String>,
}
