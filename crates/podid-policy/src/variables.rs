//! Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'default'}`, `${*}`, `${?}`,
//! `${$}`), which only a `"Version": "2012-10-17"` policy has; in older policies `${...}` is text.

use crate::wildcard::{Pattern, Token, push_wild_text};

/// A string from a policy that may contain variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Template {
    /// No variables: the text as written.
    Static(Box<str>),
    /// Text with variables, to be resolved for each request.
    Parts(Box<[Part]>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text as written (in a wildcard pattern, `*` and `?` in it are wildcards).
    Text(Box<str>),
    /// `${*}`, `${?}` or `${$}`: that character, never a wildcard.
    Escaped(char),
    /// `${key}` or `${key, 'default'}`; the key is kept in lower case.
    Variable {
        key: Box<str>,
        default: Option<Box<str>>,
    },
}

impl Template {
    /// Reads `text`; `${...}` is only special when `variables` is true.
    pub(crate) fn new(text: &str, variables: bool) -> Self {
        if !variables || !text.contains("${") {
            return Self::Static(text.into());
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let after = rest.get(start + 2..).unwrap_or_default();
            let Some(end) = after.find('}') else { break };
            let inner = after.get(..end).unwrap_or_default();
            let Some(part) = variable(inner) else {
                // Not a variable: keep `${` as text and look further on.
                push_text(&mut parts, rest.get(..start + 2).unwrap_or_default());
                rest = after;
                continue;
            };
            push_text(&mut parts, rest.get(..start).unwrap_or_default());
            parts.push(part);
            rest = after.get(end + 1..).unwrap_or_default();
        }
        push_text(&mut parts, rest);
        if parts.iter().all(|p| matches!(p, Part::Text(_))) {
            return Self::Static(text.into());
        }
        Self::Parts(parts.into_boxed_slice())
    }

    /// The resolved text, or `None` if a variable has no value and no default.
    pub(crate) fn resolve<'v>(&self, lookup: &dyn Fn(&str) -> Option<&'v str>) -> Option<String> {
        match self {
            Self::Static(s) => Some(s.to_string()),
            Self::Parts(parts) => {
                let mut out = String::new();
                for part in parts.iter() {
                    match part {
                        Part::Text(s) => out.push_str(s),
                        Part::Escaped(c) => out.push(*c),
                        Part::Variable { key, default } => {
                            out.push_str(lookup(key).or(default.as_deref())?);
                        }
                    }
                }
                Some(out)
            }
        }
    }

    /// The resolved wildcard pattern (text parts keep their wildcards; escaped characters and
    /// variable values are literal), or `None` if a variable has no value and no default.
    pub(crate) fn resolve_pattern<'v>(
        &self,
        lookup: &dyn Fn(&str) -> Option<&'v str>,
        lowercase: bool,
    ) -> Option<Pattern> {
        let fold = |s: &str| -> Box<str> {
            if lowercase {
                s.to_lowercase().into()
            } else {
                s.into()
            }
        };
        match self {
            Self::Static(s) => Some(Pattern::new(&fold(s))),
            Self::Parts(parts) => {
                let mut tokens = Vec::new();
                for part in parts.iter() {
                    match part {
                        Part::Text(s) => push_wild_text(&mut tokens, &fold(s)),
                        Part::Escaped(c) => tokens.push(Token::Literal(c.to_string().into())),
                        Part::Variable { key, default } => {
                            let value = lookup(key).or(default.as_deref())?;
                            tokens.push(Token::Literal(fold(value)));
                        }
                    }
                }
                Some(Pattern::from_tokens(tokens))
            }
        }
    }

    /// Whether the template has variables to resolve.
    pub(crate) fn has_variables(&self) -> bool {
        matches!(self, Self::Parts(_))
    }

    /// The text as written when there are no variables.
    pub(crate) fn as_static(&self) -> Option<&str> {
        match self {
            Self::Static(s) => Some(s),
            Self::Parts(_) => None,
        }
    }
}

fn push_text(parts: &mut Vec<Part>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Part::Text(prev)) = parts.last_mut() {
        *prev = format!("{prev}{text}").into_boxed_str();
    } else {
        parts.push(Part::Text(text.into()));
    }
}

/// The part for the inside of `${...}`, or `None` if it is not a variable.
fn variable(inner: &str) -> Option<Part> {
    match inner.trim() {
        "*" => return Some(Part::Escaped('*')),
        "?" => return Some(Part::Escaped('?')),
        "$" => return Some(Part::Escaped('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        None => (inner.trim(), None),
        Some((key, default)) => {
            let default = default.trim();
            let quoted = default
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))?;
            (key.trim(), Some(quoted.into()))
        }
    };
    let valid = !key.is_empty()
        && key.contains(':')
        && !key
            .chars()
            .any(|c| c.is_whitespace() || c == '$' || c == '{');
    valid.then(|| Part::Variable {
        key: key.to_lowercase().into(),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(key: &str) -> Option<&'static str> {
        match key {
            "aws:username" => Some("david"),
            "aws:principaltag/team" => Some("blue"),
            _ => None,
        }
    }

    fn resolve(text: &str) -> Option<String> {
        Template::new(text, true).resolve(&lookup)
    }

    #[test]
    fn resolves_variables_case_insensitively() {
        assert_eq!(
            resolve("home/${aws:username}/*").as_deref(),
            Some("home/david/*")
        );
        assert_eq!(resolve("${AWS:UserName}").as_deref(), Some("david"));
        assert_eq!(resolve("${aws:PrincipalTag/Team}").as_deref(), Some("blue"));
    }

    #[test]
    fn unresolved_variable_yields_nothing_unless_defaulted() {
        assert_eq!(resolve("x-${aws:PrincipalTag/dept}"), None);
        assert_eq!(
            resolve("x-${aws:PrincipalTag/dept, 'company-wide'}").as_deref(),
            Some("x-company-wide")
        );
        assert_eq!(
            resolve("x-${aws:PrincipalTag/team, 'company-wide'}").as_deref(),
            Some("x-blue")
        );
    }

    #[test]
    fn special_characters_are_literal() {
        assert_eq!(resolve("a${*}b${?}c${$}d").as_deref(), Some("a*b?c$d"));
        let pattern = Template::new("reports${*}", true)
            .resolve_pattern(&lookup, false)
            .unwrap();
        assert!(pattern.matches("reports*"));
        assert!(!pattern.matches("reportsX"));
        let wild = Template::new("reports*${aws:username}", true)
            .resolve_pattern(&lookup, false)
            .unwrap();
        assert!(wild.matches("reports-2024-david"));
    }

    #[test]
    fn variables_are_text_without_version_2012() {
        let t = Template::new("home/${aws:username}", false);
        assert_eq!(t.as_static(), Some("home/${aws:username}"));
        assert!(!t.has_variables());
    }

    #[test]
    fn malformed_variables_stay_text() {
        assert_eq!(resolve("a${b").as_deref(), Some("a${b"));
        assert_eq!(resolve("a${}b").as_deref(), Some("a${}b"));
        assert_eq!(resolve("${no colon}").as_deref(), Some("${no colon}"));
        assert_eq!(resolve("${aws:x, nope}").as_deref(), Some("${aws:x, nope}"));
    }
}
