//! Parsed documents, cached by their text: clients send the same few
//! documents over and over, and parsing one costs more than running a small
//! query against the database. Each document is parsed once (not once for
//! the field-count limit and once more by async-graphql) and its field
//! count is kept with it.

use std::sync::Arc;

use async_graphql::{
    Request,
    parser::{parse_query, types::ExecutableDocument},
};

use super::limits;
use crate::cache::BoundedMap;

/// Distinct documents kept.
const MAX_DOCUMENTS: usize = 512;
/// Longer documents are parsed every time, not kept.
const MAX_CACHED_LEN: usize = 16 * 1024;

/// A document that parsed, with its field count (see [`limits`]).
pub struct Parsed {
    pub document: ExecutableDocument,
    /// Field selections, counted up to just past the limit.
    pub fields: usize,
}

pub struct Documents {
    max_fields: usize,
    cache: BoundedMap<Option<Arc<Parsed>>>,
}

impl Documents {
    /// `max_fields` is `MAX_QUERY_FIELDS`, where counting may stop.
    pub fn new(max_fields: usize) -> Self {
        Self {
            max_fields,
            cache: BoundedMap::new(MAX_DOCUMENTS, MAX_CACHED_LEN),
        }
    }

    /// The parsed document, or `None` when it does not parse (the error is
    /// then reported by async-graphql's own parse).
    pub fn parse(&self, query: &str) -> Option<Arc<Parsed>> {
        self.cache.get_or_insert_with(query, || {
            let document = parse_query(query).ok()?;
            let fields = limits::field_count(&document, self.max_fields);
            Some(Arc::new(Parsed { document, fields }))
        })
    }

    /// Hands `request` its parsed document so that execution does not
    /// parse it again; returns the document's field count.
    pub fn prepare(&self, request: &mut Request) -> Option<usize> {
        let parsed = self.parse(&request.query)?;
        request.set_parsed_query(parsed.document.clone());
        Some(parsed.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_request_carries_its_document_and_count() {
        let documents = Documents::new(100);
        let mut request = Request::new("{ a b { c } }");
        assert_eq!(documents.prepare(&mut request), Some(3));
        assert_eq!(request.parsed_query().unwrap().operations.iter().count(), 1);
        let mut again = Request::new("{ a b { c } }");
        assert_eq!(documents.prepare(&mut again), Some(3), "from the cache");
        assert_eq!(documents.prepare(&mut Request::new("{ a")), None);
        assert_eq!(documents.prepare(&mut Request::new("{ a")), None);
    }
}
