//! Every GraphQL document the UI sends, checked against the control plane's exported schema
//! (control-plane/schema.graphql): each field and argument exists on its type, and every
//! declared variable is used and every used one declared. A schema change that breaks a page
//! fails here rather than in a browser.

use std::collections::{HashMap, HashSet};

use async_graphql_parser::types::{
    BaseType, DocumentOperations, OperationType, Selection, SelectionSet, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_parser::{Positioned, parse_query, parse_schema};
use async_graphql_value::Value;

use crate::queries;

const SCHEMA: &str = include_str!("../../control-plane/schema.graphql");

/// A field's result type (unwrapped) and argument names.
struct FieldInfo {
    ty: String,
    args: HashSet<String>,
}

/// Object and interface types by name, their fields by name.
type Types = HashMap<String, HashMap<String, FieldInfo>>;

fn named(ty: &Type) -> String {
    match &ty.base {
        BaseType::Named(n) => n.to_string(),
        BaseType::List(inner) => named(inner),
    }
}

fn schema_types() -> Types {
    let doc = parse_schema(SCHEMA).expect("control-plane/schema.graphql parses");
    let mut types = Types::new();
    for def in doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let fields = match &t.node.kind {
            TypeKind::Object(o) => &o.fields,
            TypeKind::Interface(i) => &i.fields,
            _ => continue,
        };
        let fields = fields
            .iter()
            .map(|f| {
                (
                    f.node.name.node.to_string(),
                    FieldInfo {
                        ty: named(&f.node.ty.node),
                        args: f
                            .node
                            .arguments
                            .iter()
                            .map(|a| a.node.name.node.to_string())
                            .collect(),
                    },
                )
            })
            .collect();
        types.insert(t.node.name.node.to_string(), fields);
    }
    types
}

fn variables_in(value: &Value, out: &mut HashSet<String>) {
    match value {
        Value::Variable(name) => {
            out.insert(name.to_string());
        }
        Value::List(items) => items.iter().for_each(|v| variables_in(v, out)),
        Value::Object(map) => map.values().for_each(|v| variables_in(v, out)),
        _ => {}
    }
}

struct Checker<'a> {
    types: &'a Types,
    errors: Vec<String>,
    used: HashSet<String>,
}

impl Checker<'_> {
    fn selection(&mut self, on: &str, set: &Positioned<SelectionSet>, path: &str) {
        for item in &set.node.items {
            let Selection::Field(field) = &item.node else {
                self.errors
                    .push(format!("{path}: fragments are not used by the UI"));
                continue;
            };
            let name = field.node.name.node.to_string();
            let here = format!("{path}.{name}");
            for (_, value) in &field.node.arguments {
                variables_in(&value.node, &mut self.used);
            }
            let Some(info) = self.types.get(on).and_then(|fields| fields.get(&name)) else {
                self.errors
                    .push(format!("{here}: no field `{name}` on `{on}`"));
                continue;
            };
            for (arg, _) in &field.node.arguments {
                if !info.args.contains(arg.node.as_str()) {
                    self.errors
                        .push(format!("{here}: no argument `{}`", arg.node.as_str()));
                }
            }
            let has_fields = self.types.contains_key(&info.ty);
            let selects = !field.node.selection_set.node.items.is_empty();
            match (has_fields, selects) {
                (true, true) => self.selection(&info.ty.clone(), &field.node.selection_set, &here),
                (true, false) => self
                    .errors
                    .push(format!("{here}: `{}` needs a selection", info.ty)),
                (false, true) => self
                    .errors
                    .push(format!("{here}: `{}` has no fields", info.ty)),
                (false, false) => {}
            }
        }
    }
}

fn documents() -> Vec<(&'static str, String)> {
    vec![
        ("ME", queries::ME.to_string()),
        ("dashboard", queries::dashboard_query()),
        ("CATALOG", queries::CATALOG.to_string()),
        ("app", queries::app_query()),
        ("DIFF", queries::DIFF.to_string()),
        ("ROLLBACK", queries::ROLLBACK.to_string()),
        ("PLAN", queries::PLAN.to_string()),
        ("APPLY", queries::APPLY.to_string()),
        ("CHECK_UPSTREAM", queries::CHECK_UPSTREAM.to_string()),
        ("gateways", queries::gateways_query()),
        (
            "rollout subscription",
            queries::gateway_rollout_subscription(),
        ),
    ]
}

#[test]
fn every_document_matches_the_exported_schema() {
    let types = schema_types();
    let mut errors = Vec::new();
    for (label, text) in documents() {
        let doc = match parse_query(&text) {
            Ok(doc) => doc,
            Err(e) => {
                errors.push(format!("{label}: does not parse: {e}"));
                continue;
            }
        };
        let ops: Vec<_> = match &doc.operations {
            DocumentOperations::Single(op) => vec![op],
            DocumentOperations::Multiple(map) => map.values().collect(),
        };
        for op in ops {
            let root = match op.node.ty {
                OperationType::Query => "Query",
                OperationType::Mutation => "Mutation",
                OperationType::Subscription => "Subscription",
            };
            let mut checker = Checker {
                types: &types,
                errors: Vec::new(),
                used: HashSet::new(),
            };
            checker.selection(root, &op.node.selection_set, label);
            let declared: HashSet<String> = op
                .node
                .variable_definitions
                .iter()
                .map(|v| v.node.name.node.to_string())
                .collect();
            for v in declared.difference(&checker.used) {
                checker
                    .errors
                    .push(format!("{label}: `${v}` is declared but not used"));
            }
            for v in checker.used.difference(&declared) {
                checker
                    .errors
                    .push(format!("{label}: `${v}` is used but not declared"));
            }
            errors.extend(checker.errors);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_checker_catches_unknown_fields_and_unused_variables() {
    let types = schema_types();
    let doc =
        parse_query("query X($a: Int!, $b: String) { app(name: $b) { nope } }").expect("parses");
    let Some((_, op)) = doc.operations.iter().next() else {
        panic!("one operation");
    };
    let mut checker = Checker {
        types: &types,
        errors: Vec::new(),
        used: HashSet::new(),
    };
    checker.selection("Query", &op.node.selection_set, "X");
    assert_eq!(
        checker.errors,
        vec!["X.app.nope: no field `nope` on `App`".to_string()]
    );
    assert!(!checker.used.contains("a"));
}
