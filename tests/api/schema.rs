//! The committed SDL matches the code.

#[test]
fn schema_graphql_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    let current = session_manager::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is out of date with the code. Regenerate it with:\n\n    \
         cargo run -- print-schema > schema.graphql\n\nand review the diff."
    );
}

/// Every type, field, argument, enum value and input field of the schema
/// carries a description: it is what GraphiQL and clients' tooling show.
#[test]
fn every_part_of_the_schema_is_described() {
    use async_graphql::parser::{
        parse_schema,
        types::{TypeKind, TypeSystemDefinition},
    };
    let sdl = session_manager::graphql::sdl();
    let document = parse_schema(&sdl).expect("the SDL parses");
    let mut missing = Vec::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = &ty.node;
        let name = ty.name.node.as_str();
        if ty.description.is_none() {
            missing.push(format!("type {name}"));
        }
        match &ty.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    let field = &field.node;
                    if field.description.is_none() {
                        missing.push(format!("field {name}.{}", field.name.node));
                    }
                    for argument in &field.arguments {
                        if argument.node.description.is_none() {
                            missing.push(format!(
                                "argument {name}.{}({})",
                                field.name.node, argument.node.name.node
                            ));
                        }
                    }
                }
            }
            TypeKind::Interface(interface) => {
                for field in &interface.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("field {name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Enum(enumeration) => {
                for value in &enumeration.values {
                    if value.node.description.is_none() {
                        missing.push(format!("enum value {name}.{}", value.node.value.node));
                    }
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    if field.node.description.is_none() {
                        missing.push(format!("input field {name}.{}", field.node.name.node));
                    }
                }
            }
            TypeKind::Scalar | TypeKind::Union(_) => {}
        }
    }
    assert!(
        missing.is_empty(),
        "{} parts of the schema have no description (add a `///` comment):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}
