//! From a [`Policy`] back to JSON: a canonical form that parses to an equal policy.

use std::fmt::Write as _;

use crate::ast::{Policy, PrincipalBlock, Principals, Statement};
use crate::json::write_string;

impl Policy {
    /// The policy as canonical, pretty-printed JSON. Parsing the output gives an equal policy.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\n");
        let mut fields: Vec<String> = Vec::new();
        if let Some(version) = self.version.as_str() {
            fields.push(format!("  \"Version\": {}", quoted(version)));
        }
        if let Some(id) = &self.id {
            fields.push(format!("  \"Id\": {}", quoted(id)));
        }
        let statements: Vec<String> = self.statements.iter().map(statement).collect();
        fields.push(format!(
            "  \"Statement\": [\n{}\n  ]",
            statements.join(",\n")
        ));
        out.push_str(&fields.join(",\n"));
        out.push_str("\n}\n");
        out
    }
}

fn statement(s: &Statement) -> String {
    let mut fields: Vec<String> = Vec::new();
    if let Some(sid) = &s.sid {
        fields.push(format!("\"Sid\": {}", quoted(sid)));
    }
    fields.push(format!("\"Effect\": {}", quoted(s.effect.as_str())));
    if let Some(block) = &s.principal {
        fields.push(principal(block));
    }
    let name = if s.action.negated {
        "NotAction"
    } else {
        "Action"
    };
    fields.push(format!(
        "\"{name}\": {}",
        list(s.action.items.iter().map(|a| &*a.text))
    ));
    if let Some(resource) = &s.resource {
        let name = if resource.negated {
            "NotResource"
        } else {
            "Resource"
        };
        fields.push(format!(
            "\"{name}\": {}",
            list(resource.items.iter().map(|r| &*r.text))
        ));
    }
    if !s.conditions.is_empty() {
        // Conditions are kept one per operator and key; group them by operator again.
        let mut operators: Vec<(String, Vec<String>)> = Vec::new();
        for c in &s.conditions {
            let name = c.operator().name();
            let entry = format!("{}: {}", quoted(c.key()), list(c.values()));
            match operators.iter_mut().find(|(n, _)| *n == name) {
                Some((_, keys)) => keys.push(entry),
                None => operators.push((name, vec![entry])),
            }
        }
        let body: Vec<String> = operators
            .into_iter()
            .map(|(name, keys)| format!("{}: {{{}}}", quoted(&name), keys.join(", ")))
            .collect();
        fields.push(format!("\"Condition\": {{{}}}", body.join(", ")));
    }
    let mut out = String::from("    {\n");
    let indented: Vec<String> = fields.iter().map(|f| format!("      {f}")).collect();
    out.push_str(&indented.join(",\n"));
    out.push_str("\n    }");
    out
}

fn principal(block: &PrincipalBlock) -> String {
    let name = if block.negated {
        "NotPrincipal"
    } else {
        "Principal"
    };
    match &block.principals {
        Principals::Star => format!("\"{name}\": \"*\""),
        Principals::Entries(entries) => {
            let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
            for entry in entries {
                match groups.iter_mut().find(|(k, _)| *k == &*entry.key) {
                    Some((_, values)) => values.push(&entry.text),
                    None => groups.push((&entry.key, vec![&entry.text])),
                }
            }
            let body: Vec<String> = groups
                .into_iter()
                .map(|(key, values)| format!("{}: {}", quoted(key), list(values.into_iter())))
                .collect();
            format!("\"{name}\": {{{}}}", body.join(", "))
        }
    }
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(quoted).collect();
    match items.as_slice() {
        [one] => one.clone(),
        _ => {
            let mut out = String::from("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{item}");
            }
            out.push(']');
            out
        }
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}
