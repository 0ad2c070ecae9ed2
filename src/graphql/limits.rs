//! The cost of a document counted before it runs: every field selection,
//! aliases and `__typename` included, fragments expanded where they are
//! spread. async-graphql's own complexity limit skips `__typename`, so
//! thousands of aliased `__typename`s would pass it.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Counts field selections, stopping early once `limit` is passed.
pub fn field_count(document: &ExecutableDocument, limit: usize) -> usize {
    let mut count = 0;
    for (_, operation) in document.operations.iter() {
        let mut spreading = HashSet::new();
        count_set(
            document,
            &operation.node.selection_set.node,
            &mut count,
            limit,
            &mut spreading,
        );
        if count > limit {
            break;
        }
    }
    count
}

fn count_set<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    count: &mut usize,
    limit: usize,
    spreading: &mut HashSet<&'a str>,
) {
    for selection in &set.items {
        if *count > limit {
            return;
        }
        match &selection.node {
            Selection::Field(field) => {
                *count += 1;
                count_set(
                    document,
                    &field.node.selection_set.node,
                    count,
                    limit,
                    spreading,
                );
            }
            Selection::InlineFragment(fragment) => {
                count_set(
                    document,
                    &fragment.node.selection_set.node,
                    count,
                    limit,
                    spreading,
                );
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // A cycle is a validation error reported later; do not loop on it.
                if let Some(fragment) = document.fragments.get(name)
                    && spreading.insert(name)
                {
                    count_set(
                        document,
                        &fragment.node.selection_set.node,
                        count,
                        limit,
                        spreading,
                    );
                    spreading.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        field_count(&async_graphql::parser::parse_query(query).unwrap(), 10_000)
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
