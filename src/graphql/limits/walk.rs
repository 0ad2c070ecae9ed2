//! Walks over a parsed document: the field count and expanded depth of
//! the cost limit, and the root fields of a subscription. Each walk has
//! a depth bound and a step budget, so no document makes it recurse
//! deeply or run long.

use std::collections::HashSet;

use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

use super::MAX_NESTING;

/// What [`measure`] found in a parsed document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// Field selections, counted up to just past the limit.
    pub fields: usize,
    /// Selections nest deeper than the bound once fragments are
    /// expanded where they are spread (a chain of fragments spreading one
    /// another nests without a single bracket; every later visitor of the
    /// document recurses through it).
    pub too_deep: bool,
}

/// Counts field selections, stopping early once `limit` is passed, and
/// whether the expanded selections nest deeper than `max_depth`. The walk
/// itself never goes deeper than that.
pub fn measure(document: &ExecutableDocument, limit: usize, max_depth: usize) -> Measure {
    let mut walk = Walk {
        document,
        limit,
        max_depth,
        steps: 0,
        max_steps: limit.saturating_mul(4).max(256),
        count: 0,
        too_deep: false,
        spreading: HashSet::new(),
    };
    for (_, operation) in document.operations.iter() {
        walk.set(&operation.node.selection_set.node, 1);
        if walk.stopped() {
            break;
        }
    }
    Measure {
        fields: walk.count,
        too_deep: walk.too_deep,
    }
}

/// Counts field selections, stopping early once `limit` is passed.
pub fn field_count(document: &ExecutableDocument, limit: usize) -> usize {
    measure(document, limit, MAX_NESTING).fields
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    limit: usize,
    max_depth: usize,
    /// Selections visited (fields, inline fragments, spreads), fragments
    /// expanded. Fragments that spread each other twice over double the
    /// walk at each level without adding a field (a kilobyte of them would
    /// take days): past `max_steps` the document counts as over the field
    /// limit, since spreads count toward it too.
    steps: usize,
    max_steps: usize,
    count: usize,
    too_deep: bool,
    spreading: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    fn stopped(&self) -> bool {
        self.count > self.limit || self.too_deep
    }

    fn set(&mut self, set: &'a SelectionSet, depth: usize) {
        if depth > self.max_depth {
            self.too_deep = true;
            return;
        }
        for selection in &set.items {
            if self.stopped() {
                return;
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                self.count = self.limit + 1;
                return;
            }
            match &selection.node {
                Selection::Field(field) => {
                    self.count += 1;
                    self.set(&field.node.selection_set.node, depth + 1);
                }
                Selection::InlineFragment(fragment) => {
                    self.set(&fragment.node.selection_set.node, depth + 1);
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    // A cycle is a validation error reported later; do not loop on it.
                    if let Some(fragment) = self.document.fragments.get(name)
                        && self.spreading.insert(name)
                    {
                        self.set(&fragment.node.selection_set.node, depth + 1);
                        self.spreading.remove(name);
                    }
                }
            }
        }
    }
}

/// Selections [`root_fields`] visits at most: far more than any real
/// subscription's root needs.
const ROOT_STEPS: usize = 1024;

/// The distinct response keys (alias or name) an operation selects at its
/// root, fragments expanded, up to `limit + 1`; and whether one of them
/// is an introspection field. A subscription needs exactly one, and not
/// an introspection field.
pub fn root_fields(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    limit: usize,
) -> (usize, bool) {
    #[allow(clippy::too_many_arguments)]
    fn collect<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        keys: &mut HashSet<&'a str>,
        introspection: &mut bool,
        spreading: &mut HashSet<&'a str>,
        depth: usize,
        limit: usize,
        steps: &mut usize,
    ) {
        if depth > MAX_NESTING {
            return;
        }
        for selection in &set.items {
            if keys.len() > limit {
                return;
            }
            // Fragments spreading each other twice over would double the
            // walk at each level (see `Walk::steps`).
            *steps += 1;
            if *steps > ROOT_STEPS {
                return;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = field.alias.as_ref().unwrap_or(&field.name).node.as_str();
                    keys.insert(key);
                    *introspection |= field.name.node.starts_with("__");
                }
                Selection::InlineFragment(fragment) => collect(
                    document,
                    &fragment.node.selection_set.node,
                    keys,
                    introspection,
                    spreading,
                    depth + 1,
                    limit,
                    steps,
                ),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(fragment) = document.fragments.get(name)
                        && spreading.insert(name)
                    {
                        collect(
                            document,
                            &fragment.node.selection_set.node,
                            keys,
                            introspection,
                            spreading,
                            depth + 1,
                            limit,
                            steps,
                        );
                        spreading.remove(name);
                    }
                }
            }
        }
    }
    let mut keys = HashSet::new();
    let mut introspection = false;
    let mut steps = 0;
    collect(
        document,
        &operation.selection_set.node,
        &mut keys,
        &mut introspection,
        &mut HashSet::new(),
        1,
        limit,
        &mut steps,
    );
    if steps > ROOT_STEPS {
        // Not walked to the end: as many as to be refused.
        return (limit + 1, introspection);
    }
    (keys.len(), introspection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        field_count(&async_graphql::parser::parse_query(query).unwrap(), 10_000)
    }

    #[test]
    fn fragment_chains_count_as_nesting() {
        let chain = |n: usize| {
            let mut q = String::from("{ ...F0 }");
            for i in 0..n {
                q.push_str(&format!(" fragment F{i} on Q {{ a ...F{} }}", i + 1));
            }
            q.push_str(&format!(" fragment F{n} on Q {{ a }}"));
            async_graphql::parser::parse_query(q).unwrap()
        };
        assert!(!measure(&chain(40), 10_000, 48).too_deep);
        assert!(measure(&chain(60), 10_000, 48).too_deep);
        assert!(
            measure(&chain(20_000), 100_000, 48).too_deep,
            "and the walk stops"
        );
    }

    /// Each fragment spreads the next twice: the expansion doubles at every
    /// level, and the last spreads the first (or a fragment that does not
    /// exist), so no field ever stops the count.
    fn fan_out(levels: usize, last: &str) -> String {
        let mut q = String::from("{ ...F0 }");
        for i in 0..levels {
            q.push_str(&format!(
                " fragment F{i} on Q {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        q.push_str(&format!(" fragment F{levels} on Q {{ ...{last} }}"));
        q
    }

    #[test]
    fn fragments_fanning_out_are_refused_in_bounded_work() {
        for last in ["F0", "Missing"] {
            let doc = async_graphql::parser::parse_query(fan_out(40, last)).unwrap();
            let measured = measure(&doc, 500, 48);
            assert!(
                measured.fields > 500,
                "over the limit, found in bounded steps"
            );
            let sub = fan_out(40, last).replacen("{ ...F0 }", "subscription { ...F0 }", 1);
            let doc = async_graphql::parser::parse_query(sub).unwrap();
            let (_, op) = doc.operations.iter().next().unwrap();
            assert!(
                root_fields(&doc, &op.node, 1).0 > 1,
                "refused as a subscription too"
            );
        }
        // A modest fan-out of real fields is counted as before.
        let doc = async_graphql::parser::parse_query(
            "{ ...A } fragment A on Q { ...B ...B } fragment B on Q { x y }",
        )
        .unwrap();
        assert_eq!(measure(&doc, 500, 48).fields, 4);
    }

    #[test]
    fn root_fields_are_distinct_response_keys() {
        let roots = |q: &str| {
            let doc = async_graphql::parser::parse_query(q).unwrap();
            let (_, op) = doc.operations.iter().next().unwrap();
            root_fields(&doc, &op.node, 10)
        };
        assert_eq!(roots("subscription { a }"), (1, false));
        assert_eq!(roots("subscription { a a }"), (1, false), "one key twice");
        assert_eq!(roots("subscription { a b: a }"), (2, false));
        assert_eq!(roots("subscription { a __typename }"), (2, true));
        assert_eq!(
            roots("subscription { ...F } fragment F on S { x: a y: a }"),
            (2, false)
        );
        assert_eq!(roots("subscription { ... on S { a } a }"), (1, false));
    }

    #[test]
    fn fields_aliases_and_typename_all_count() {
        assert_eq!(count("{ a b { c } }"), 3);
        assert_eq!(count("{ x: __typename y: __typename z: __typename }"), 3);
        assert_eq!(count("{ ... on Q { a b } }"), 2);
    }

    #[test]
    fn fragments_count_once_per_spread() {
        let q = "query { a { ...F } b { ...F } } fragment F on T { x y z }";
        assert_eq!(count(q), 2 + 3 * 2);
        // Nested spreads multiply, which is exactly the attack to catch.
        let q = "{ ...A ...A } fragment A on Q { ...B ...B } fragment B on Q { f g }";
        assert_eq!(count(q), 8);
    }

    #[test]
    fn cycles_and_limits_stop_the_walk() {
        assert_eq!(count("{ ...A } fragment A on Q { a ...A }"), 1);
        let many = format!(
            "{{ {} }}",
            (0..5_000)
                .map(|i| format!("a{i}: __typename"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let doc = async_graphql::parser::parse_query(&many).unwrap();
        assert_eq!(field_count(&doc, 100), 101, "stops just past the limit");
    }
}
