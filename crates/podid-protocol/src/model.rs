//! AWS API models (botocore's `service-2.json`), read into shapes with compiled constraints.

#![allow(
    clippy::indexing_slicing,
    reason = "indexing a serde_json::Value by key gives Null for a missing key; it never panics"
)]

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

/// The services whose models podid embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// IAM, `2010-05-08`.
    Iam,
    /// STS, `2011-06-15`.
    Sts,
}

impl Service {
    /// The model of this service, read once.
    pub fn model(self) -> &'static Model {
        static IAM: OnceLock<Model> = OnceLock::new();
        static STS: OnceLock<Model> = OnceLock::new();
        match self {
            Self::Iam => {
                IAM.get_or_init(|| Model::from_json(include_str!("../models/iam.json"), false))
            }
            Self::Sts => {
                STS.get_or_init(|| Model::from_json(include_str!("../models/sts.json"), true))
            }
        }
    }
}

/// A service model.
#[derive(Debug)]
pub struct Model {
    /// The API version, such as `2010-05-08`.
    pub api_version: String,
    /// The XML namespace of responses.
    pub xml_namespace: String,
    pub(crate) shapes: HashMap<String, Shape>,
    operations: HashMap<String, Operation>,
    /// Whether validation messages echo string values (`Value 'x' at ...`): STS does; IAM stopped.
    pub(crate) echo_values: bool,
}

/// One operation of a model.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The operation's name, such as `CreateRole`.
    pub name: String,
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
    /// The element that wraps the output, such as `CreateRoleResult`.
    pub result_wrapper: Option<String>,
}

#[derive(Debug)]
pub(crate) enum Shape {
    Structure {
        members: Vec<Member>,
        required: Vec<String>,
    },
    List {
        member: String,
        min: Option<u64>,
        max: Option<u64>,
    },
    Map {
        key: String,
        value: String,
    },
    String(StringRules),
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean,
    Timestamp,
    Other,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) shape: String,
    pub(crate) location_name: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct StringRules {
    pub(crate) min: Option<u64>,
    pub(crate) max: Option<u64>,
    /// The pattern as the model writes it (for messages) and compiled (anchored).
    pub(crate) pattern: Option<(String, Option<regex::Regex>)>,
    pub(crate) enumeration: Option<Vec<String>>,
}

impl Model {
    fn from_json(text: &str, echo_values: bool) -> Self {
        let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let metadata = &json["metadata"];
        let mut shapes = HashMap::new();
        if let Some(map) = json["shapes"].as_object() {
            for (name, shape) in map {
                shapes.insert(name.clone(), read_shape(shape));
            }
        }
        let mut operations = HashMap::new();
        if let Some(map) = json["operations"].as_object() {
            for (name, op) in map {
                operations.insert(
                    name.clone(),
                    Operation {
                        name: name.clone(),
                        input: op["input"]["shape"].as_str().map(str::to_owned),
                        output: op["output"]["shape"].as_str().map(str::to_owned),
                        result_wrapper: op["output"]["resultWrapper"].as_str().map(str::to_owned),
                    },
                );
            }
        }
        Self {
            api_version: metadata["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            xml_namespace: metadata["xmlNamespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            shapes,
            operations,
            echo_values,
        }
    }

    /// The operation named `name`.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// The names of all operations.
    pub fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }

    pub(crate) fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

fn read_shape(shape: &Value) -> Shape {
    let num = |key: &str| shape[key].as_u64();
    match shape["type"].as_str().unwrap_or_default() {
        "structure" => Shape::Structure {
            members: shape["members"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(name, member)| Member {
                            name: name.clone(),
                            shape: member["shape"].as_str().unwrap_or_default().to_owned(),
                            location_name: member["locationName"].as_str().map(str::to_owned),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            required: shape["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "list" => Shape::List {
            member: shape["member"]["shape"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            min: num("min"),
            max: num("max"),
        },
        "map" => Shape::Map {
            key: shape["key"]["shape"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            value: shape["value"]["shape"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
        "string" => Shape::String(StringRules {
            min: num("min"),
            max: num("max"),
            pattern: shape["pattern"]
                .as_str()
                .map(|p| (p.to_owned(), compile_java_pattern(p))),
            enumeration: shape["enum"].as_array().map(|e| {
                e.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }),
        }),
        "integer" | "long" => Shape::Integer {
            min: shape["min"].as_i64(),
            max: shape["max"].as_i64(),
        },
        "boolean" => Shape::Boolean,
        "timestamp" => Shape::Timestamp,
        _ => Shape::Other,
    }
}

/// Compiles a model pattern (Java regex syntax, matched against the whole value): `\uXXXX` escapes
/// become `\x{XXXX}`, and `\w` is ASCII as in Java. `None` if the pattern cannot be expressed.
pub(crate) fn compile_java_pattern(pattern: &str) -> Option<regex::Regex> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                let next = chars.get(i + 1).copied();
                match next {
                    Some('u') => {
                        let hex: String = chars.iter().skip(i + 2).take(4).collect();
                        if hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                            out.push_str(&format!("\\x{{{hex}}}"));
                            i += 6;
                            continue;
                        }
                        return None;
                    }
                    Some('w') => {
                        out.push_str(if in_class {
                            "a-zA-Z0-9_"
                        } else {
                            "[a-zA-Z0-9_]"
                        });
                        i += 2;
                        continue;
                    }
                    Some(n) => {
                        out.push('\\');
                        out.push(n);
                        i += 2;
                        continue;
                    }
                    None => return None,
                }
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    regex::Regex::new(&format!("^(?:{out})$")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_compile_and_anchor() {
        let name = compile_java_pattern(r"[\w+=,.@-]+").unwrap();
        assert!(name.is_match("my-role_1+=,.@"));
        assert!(!name.is_match("my role"));
        assert!(!name.is_match("rôle"), "\\w is ASCII, as in Java");
        let path = compile_java_pattern(r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)").unwrap();
        assert!(path.is_match("/"));
        assert!(path.is_match("/team/app/"));
        assert!(!path.is_match("team/"));
        let document = compile_java_pattern(r"[\u0009\u000A\u000D\u0020-\u00FF]+").unwrap();
        assert!(document.is_match("{\"a\": \"é\"}\n"));
        assert!(!document.is_match("😀"));
        let tag = compile_java_pattern(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+").unwrap();
        assert!(tag.is_match("kubernetes-namespace"));
        assert!(!tag.is_match("a*b"));
    }

    #[test]
    fn every_pattern_of_the_embedded_models_compiles() {
        for service in [Service::Iam, Service::Sts] {
            let model = service.model();
            assert!(!model.api_version.is_empty());
            for (name, shape) in &model.shapes {
                if let Shape::String(StringRules {
                    pattern: Some((text, compiled)),
                    ..
                }) = shape
                {
                    // Look-arounds have no equivalent in the regex crate; those checks are skipped.
                    let lookaround =
                        text.contains("(?!") || text.contains("(?=") || text.contains("(?<");
                    assert!(
                        compiled.is_some() || lookaround,
                        "{service:?} {name}: {text}"
                    );
                }
            }
        }
        assert!(Service::Iam.model().operation("CreateRole").is_some());
        assert_eq!(
            Service::Sts.model().xml_namespace,
            "https://sts.amazonaws.com/doc/2011-06-15/"
        );
    }
}
