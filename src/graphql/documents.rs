//! Parsed documents, cached by their text: clients send the same few
//! documents over and over, and parsing one costs more than running a small
//! query against the database. Each document is parsed once (not once for
//! the field-count limit and once more by async-graphql) and its field
//! count is kept with it.
//!
//! A document is also fully validated once: async-graphql checks every
//! document against all of GraphQL's validation rules on every request (a
//! tenth of the `sessions` query's work, measured). The outcome depends
//! only on the document and the operation chosen, unless the document
//! declares variables (then the values sent are checked too), so a
//! document without variables that passed once is run on a schema that
//! skips those rules (see [`Parsed::validated`]).

use std::sync::{Arc, OnceLock};

use async_graphql::{
    Request,
    parser::{
        parse_query,
        types::{DocumentOperations, ExecutableDocument},
    },
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
    /// Declares variables: the full validation then depends on their values.
    has_variables: bool,
    /// The operation name with which the document passed the full
    /// validation, once it has.
    validated_as: OnceLock<Option<String>>,
}

impl Parsed {
    /// The document has passed async-graphql's full validation before, for
    /// the operation `request` asks for, and declares no variables: the
    /// same validation would pass again.
    pub fn validated(&self, request: &Request) -> bool {
        !self.has_variables && self.validated_as.get() == Some(&request.operation_name)
    }

    /// Records that the full validation passed for `operation_name`.
    pub fn passed_validation(&self, operation_name: Option<String>) {
        let _ = self.validated_as.set(operation_name);
    }
}

fn declares_variables(document: &ExecutableDocument) -> bool {
    match &document.operations {
        DocumentOperations::Single(operation) => !operation.node.variable_definitions.is_empty(),
        DocumentOperations::Multiple(operations) => operations
            .values()
            .any(|operation| !operation.node.variable_definitions.is_empty()),
    }
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
            Some(Arc::new(Parsed {
                has_variables: declares_variables(&document),
                document,
                fields,
                validated_as: OnceLock::new(),
            }))
        })
    }

    /// Hands `request` its parsed document so that execution does not
    /// parse it again; returns the document (for its field count and
    /// validation).
    pub fn prepare(&self, request: &mut Request) -> Option<Arc<Parsed>> {
        let parsed = self.parse(&request.query)?;
        request.set_parsed_query(parsed.document.clone());
        Some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_request_carries_its_document_and_count() {
        let documents = Documents::new(100);
        let fields = |request: &mut Request| documents.prepare(request).map(|p| p.fields);
        let mut request = Request::new("{ a b { c } }");
        assert_eq!(fields(&mut request), Some(3));
        assert_eq!(request.parsed_query().unwrap().operations.iter().count(), 1);
        let mut again = Request::new("{ a b { c } }");
        assert_eq!(fields(&mut again), Some(3), "from the cache");
        assert_eq!(fields(&mut Request::new("{ a")), None);
        assert_eq!(fields(&mut Request::new("{ a")), None);
    }

    #[test]
    fn a_document_counts_as_validated_for_the_operation_that_passed() {
        let documents = Documents::new(100);
        let query = "query A { a } query B { b }";
        let named = |name: &str| Request::new(query).operation_name(name);
        let parsed = documents.prepare(&mut named("A")).unwrap();
        assert!(!parsed.validated(&named("A")), "not before it has passed");
        parsed.passed_validation(Some("A".into()));
        assert!(parsed.validated(&named("A")));
        assert!(!parsed.validated(&named("B")), "another operation");
        assert!(
            !parsed.validated(&Request::new(query)),
            "no operation named"
        );
        let cached = documents.prepare(&mut named("A")).unwrap();
        assert!(
            cached.validated(&named("A")),
            "kept with the cached document"
        );
    }

    #[test]
    fn a_document_with_variables_is_always_validated_in_full() {
        let documents = Documents::new(100);
        let query = "query($id: ID!) { a(id: $id) }";
        let parsed = documents.prepare(&mut Request::new(query)).unwrap();
        parsed.passed_validation(None);
        assert!(!parsed.validated(&Request::new(query)));
    }
}
