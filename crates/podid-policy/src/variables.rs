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
    /// Reads `text`; `${...}` is only special when `variables` is true. Linear in the length of
    /// `text`: each `}` ends at most one candidate, the last `${` before it.
    pub(crate) fn new(text: &str, variables: bool) -> Self {
        if !variables || !text.contains("${") {
            return Self::Static(text.into());
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let Some(close) = rest
                .get(start + 2..)
                .and_then(|r| r.find('}'))
                .map(|c| c + start + 2)
            else {
                break;
            };
            // Only the last `${` before the `}` can open a variable: a key has no `$` or `{`.
            let open = rest
                .get(..close)
                .and_then(|r| r.rfind("${"))
                .unwrap_or(start);
            let inner = rest.get(open + 2..close).unwrap_or_default();
            match variable(inner) {
                Some(part) => {
                    literal.push_str(rest.get(..open).unwrap_or_default());
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal).into_boxed_str()));
                    }
                    parts.push(part);
                }
                None => literal.push_str(rest.get(..=close).unwrap_or_default()),
            }
            rest = rest.get(close + 1..).unwrap_or_default();
        }
        literal.push_str(rest);
        if parts.is_empty() {
            return Self::Static(text.into());
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal.into_boxed_str()));
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
