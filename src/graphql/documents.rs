//! Parsed documents, cached by their text: clients send the same few
//! documents over and over, and parsing one costs more than running a small
//! query against the database. Each document is parsed once (not once for
//! the field-count limit and once more by async-graphql) and its field
//! count is kept with it. A document nested too deep for the parser's
//! recursion is refused before it is parsed (see [`limits`]), and the
//! refusal is kept too.
//!
//! A document is also fully validated once: async-graphql checks every
//! document against all of GraphQL's validation rules on every request (a
//! tenth of the `sessions` query's work, measured). The outcome depends
//! only on the document and the operation chosen, unless the document
//! declares variables (then the values sent are checked too), so a
//! document without variables that passed once is run on a schema that
//! skips those rules (see [`Parsed::validated`]).
//!
//! A document that [`fast`](super::fast) answers keeps its plan here, for
//! use once it has passed that validation (see [`Parsed::fast_plan`]).

use std::sync::{Arc, OnceLock};

use async_graphql::{
    Request,
    parser::{
        parse_query,
        types::{DocumentOperations, ExecutableDocument},
    },
};

use super::{
    fast::Plan,
    limits::{self, TooDeep},
};
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
    /// How [`super::fast`] answers it, if it does.
    plan: Option<Plan>,
}

impl Parsed {
    /// The document has passed async-graphql's full validation before, for
    /// the operation `request` asks for, and declares no variables: the
    /// same validation would pass again.
    pub fn validated(&self, request: &Request) -> bool {
        !self.has_variables && self.validated_as.get() == Some(&request.operation_name)
    }

    /// The plan that answers `request` without the executor: only for a
    /// document that has passed the full validation on the executor, for
    /// this operation (so the schema's limits and rules have accepted it,
    /// whatever they are configured to).
    pub fn fast_plan(&self, request: &Request) -> Option<&Plan> {
        self.plan.as_ref().filter(|_| self.validated(request))
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
    max_nesting: usize,
    cache: BoundedMap<Outcome>,
}

/// A document as the cache keeps it: refused, or parsed if it parses.
pub type Outcome = Result<Option<Arc<Parsed>>, TooDeep>;

impl Documents {
    /// `max_fields` is `MAX_QUERY_FIELDS`, where counting may stop;
    /// `max_nesting` the deepest nesting accepted
    /// ([`limits::document_bound`]).
    pub fn new(max_fields: usize, max_nesting: usize) -> Self {
        Self {
            max_fields,
            max_nesting,
            cache: BoundedMap::new(MAX_DOCUMENTS, MAX_CACHED_LEN),
        }
    }

    /// The parsed document, or `None` when it does not parse (the error is
    /// then reported by async-graphql's own parse, which is safe to run on
    /// it: its nesting has been checked). `Err` when it nests too deep,
    /// in brackets or in fragments spread in fragments: nothing else may
    /// parse or walk it then.
    pub fn parse(&self, query: &str) -> Outcome {
        self.cache.get_or_insert_with(query, || {
            limits::document_nesting(query, self.max_nesting)?;
            let Ok(document) = parse_query(query) else {
                return Ok(None);
            };
            let measure = limits::measure(&document, self.max_fields, self.max_nesting);
            if measure.too_deep {
                return Err(TooDeep {
                    max: self.max_nesting,
                });
            }
            Ok(Some(Arc::new(Parsed {
                has_variables: declares_variables(&document),
                plan: Plan::of(&document),
                document,
                fields: measure.fields,
                validated_as: OnceLock::new(),
            })))
        })
    }

    /// Hands `request` its parsed document so that execution does not
    /// parse it again; returns the document (for its field count and
    /// validation), `None` when it does not parse.
    pub fn prepare(&self, request: &mut Request) -> Outcome {
        let parsed = self.parse(&request.query)?;
        if let Some(parsed) = &parsed {
            request.set_parsed_query(parsed.document.clone());
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_request_carries_its_document_and_count() {
        let documents = Documents::new(100, 48);
        let fields = |request: &mut Request| documents.prepare(request).unwrap().map(|p| p.fields);
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
        let documents = Documents::new(100, 48);
        let query = "query A { a } query B { b }";
        let named = |name: &str| Request::new(query).operation_name(name);
        let parsed = documents.prepare(&mut named("A")).unwrap().unwrap();
        assert!(!parsed.validated(&named("A")), "not before it has passed");
        parsed.passed_validation(Some("A".into()));
        assert!(parsed.validated(&named("A")));
        assert!(!parsed.validated(&named("B")), "another operation");
        assert!(
            !parsed.validated(&Request::new(query)),
            "no operation named"
        );
        let cached = documents.prepare(&mut named("A")).unwrap().unwrap();
        assert!(
            cached.validated(&named("A")),
            "kept with the cached document"
        );
    }

    #[test]
    fn a_document_with_variables_is_always_validated_in_full() {
        let documents = Documents::new(100, 48);
        let query = "query($id: ID!) { a(id: $id) }";
        let parsed = documents
            .prepare(&mut Request::new(query))
            .unwrap()
            .unwrap();
        parsed.passed_validation(None);
        assert!(!parsed.validated(&Request::new(query)));
    }

    #[test]
    fn a_document_nested_too_deep_is_refused_every_time_and_never_parsed() {
        let documents = Documents::new(100, 48);
        let deep = format!("{{a(x: {}{})}}", "[".repeat(5000), "]".repeat(5000));
        for _ in 0..2 {
            let mut request = Request::new(deep.clone());
            assert!(documents.prepare(&mut request).is_err());
        }
        let mut chain = String::from("{ ...F0 }");
        for i in 0..100 {
            chain.push_str(&format!(" fragment F{i} on Q {{ ...F{} }}", i + 1));
        }
        chain.push_str(" fragment F100 on Q { a }");
        assert!(documents.parse(&chain).is_err(), "fragments in fragments");
        assert!(documents.parse("{ a(x: [[1]]) }").unwrap().is_some());
    }
}
