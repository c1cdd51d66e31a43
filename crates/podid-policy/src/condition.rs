//! Condition operators: parsing their names and values, and evaluating them against a request.
//!
//! The rules (iam-semantics §4): operators in a block AND together, keys within an operator AND,
//! values of one key OR; negated operators match when the request value matches none of the
//! values (NOR). A positive operator on a missing key is false, a negated one true, `...IfExists`
//! true. `ForAllValues:` is true for a missing or empty key, `ForAnyValue:` false.

use std::net::IpAddr;

use base64::Engine as _;

use crate::request::{Request, Values};
use crate::variables::Template;
use crate::wildcard::Pattern;

/// A condition operator, without qualifier or `IfExists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `ArnEquals` (the same as `ArnLike`).
    ArnEquals,
    /// `ArnLike`: each of the six ARN components matched with `*` and `?`.
    ArnLike,
    /// `ArnNotEquals` (the same as `ArnNotLike`).
    ArnNotEquals,
    /// `ArnNotLike`.
    ArnNotLike,
    /// `BinaryEquals`: base64 in the policy, compared byte for byte.
    BinaryEquals,
    /// `Bool`.
    Bool,
    /// `DateEquals`.
    DateEquals,
    /// `DateGreaterThan`.
    DateGreaterThan,
    /// `DateGreaterThanEquals`.
    DateGreaterThanEquals,
    /// `DateLessThan`.
    DateLessThan,
    /// `DateLessThanEquals`.
    DateLessThanEquals,
    /// `DateNotEquals`.
    DateNotEquals,
    /// `IpAddress`: CIDR blocks; an address without a prefix is one address.
    IpAddress,
    /// `NotIpAddress`.
    NotIpAddress,
    /// `Null`: `true` means the key is absent, `false` that it is present.
    Null,
    /// `NumericEquals`.
    NumericEquals,
    /// `NumericGreaterThan`.
    NumericGreaterThan,
    /// `NumericGreaterThanEquals`.
    NumericGreaterThanEquals,
    /// `NumericLessThan`.
    NumericLessThan,
    /// `NumericLessThanEquals`.
    NumericLessThanEquals,
    /// `NumericNotEquals`.
    NumericNotEquals,
    /// `StringEquals`: exact, case-sensitive, no wildcards.
    StringEquals,
    /// `StringEqualsIgnoreCase`.
    StringEqualsIgnoreCase,
    /// `StringLike`: `*` and `?` wildcards, case-sensitive.
    StringLike,
    /// `StringNotEquals`.
    StringNotEquals,
    /// `StringNotEqualsIgnoreCase`.
    StringNotEqualsIgnoreCase,
    /// `StringNotLike`.
    StringNotLike,
}

const ALL: [Operator; 27] = [
    Operator::ArnEquals,
    Operator::ArnLike,
    Operator::ArnNotEquals,
    Operator::ArnNotLike,
    Operator::BinaryEquals,
    Operator::Bool,
    Operator::DateEquals,
    Operator::DateGreaterThan,
    Operator::DateGreaterThanEquals,
    Operator::DateLessThan,
    Operator::DateLessThanEquals,
    Operator::DateNotEquals,
    Operator::IpAddress,
    Operator::NotIpAddress,
    Operator::Null,
    Operator::NumericEquals,
    Operator::NumericGreaterThan,
    Operator::NumericGreaterThanEquals,
    Operator::NumericLessThan,
    Operator::NumericLessThanEquals,
    Operator::NumericNotEquals,
    Operator::StringEquals,
    Operator::StringEqualsIgnoreCase,
    Operator::StringLike,
    Operator::StringNotEquals,
    Operator::StringNotEqualsIgnoreCase,
    Operator::StringNotLike,
];

impl Operator {
    /// The operator's name as policies write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::ArnEquals => "ArnEquals",
            Self::ArnLike => "ArnLike",
            Self::ArnNotEquals => "ArnNotEquals",
            Self::ArnNotLike => "ArnNotLike",
            Self::BinaryEquals => "BinaryEquals",
            Self::Bool => "Bool",
            Self::DateEquals => "DateEquals",
            Self::DateGreaterThan => "DateGreaterThan",
            Self::DateGreaterThanEquals => "DateGreaterThanEquals",
            Self::DateLessThan => "DateLessThan",
            Self::DateLessThanEquals => "DateLessThanEquals",
            Self::DateNotEquals => "DateNotEquals",
            Self::IpAddress => "IpAddress",
            Self::NotIpAddress => "NotIpAddress",
            Self::Null => "Null",
            Self::NumericEquals => "NumericEquals",
            Self::NumericGreaterThan => "NumericGreaterThan",
            Self::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            Self::NumericLessThan => "NumericLessThan",
            Self::NumericLessThanEquals => "NumericLessThanEquals",
            Self::NumericNotEquals => "NumericNotEquals",
            Self::StringEquals => "StringEquals",
            Self::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            Self::StringLike => "StringLike",
            Self::StringNotEquals => "StringNotEquals",
            Self::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            Self::StringNotLike => "StringNotLike",
        }
    }

    /// Whether the operator is a negated one, whose values combine as NOR.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            Self::ArnNotEquals
                | Self::ArnNotLike
                | Self::DateNotEquals
                | Self::NotIpAddress
                | Self::NumericNotEquals
                | Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
        )
    }

    /// Whether values of this operator may contain policy variables.
    pub(crate) fn takes_variables(self) -> bool {
        matches!(
            self,
            Self::StringEquals
                | Self::StringNotEquals
                | Self::StringEqualsIgnoreCase
                | Self::StringNotEqualsIgnoreCase
                | Self::StringLike
                | Self::StringNotLike
                | Self::ArnEquals
                | Self::ArnLike
                | Self::ArnNotEquals
                | Self::ArnNotLike
        )
    }

    fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|op| op.name() == name)
    }
}

/// `ForAllValues:` or `ForAnyValue:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetQualifier {
    /// `ForAllValues:`: every request value must match.
    ForAllValues,
    /// `ForAnyValue:`: at least one request value must match.
    ForAnyValue,
}

/// A full operator as written: qualifier, operator and `IfExists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorSpec {
    /// The set qualifier, if any.
    pub qualifier: Option<SetQualifier>,
    /// The operator.
    pub operator: Operator,
    /// Whether `IfExists` was appended.
    pub if_exists: bool,
}

impl OperatorSpec {
    /// Reads an operator such as `ForAllValues:StringLikeIfExists`; names are case-sensitive.
    pub fn parse(text: &str) -> Option<Self> {
        let (qualifier, rest) = if let Some(rest) = text.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = text.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, text)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator = Operator::from_name(base)?;
        if if_exists && operator == Operator::Null {
            return None;
        }
        Some(Self {
            qualifier,
            operator,
            if_exists,
        })
    }

    /// The operator as policies write it.
    pub fn name(&self) -> String {
        let prefix = match self.qualifier {
            Some(SetQualifier::ForAllValues) => "ForAllValues:",
            Some(SetQualifier::ForAnyValue) => "ForAnyValue:",
            None => "",
        };
        let suffix = if self.if_exists { "IfExists" } else { "" };
        format!("{prefix}{}{suffix}", self.operator.name())
    }

    /// The known operator closest to `text`, for "did you mean" hints.
    pub(crate) fn suggest(text: &str) -> Option<&'static str> {
        if text.len() > 64 {
            return None;
        }
        let base = text
            .rsplit(':')
            .next()
            .unwrap_or(text)
            .trim_end_matches("IfExists")
            .trim_end_matches("ifexists");
        ALL.into_iter()
            .map(Operator::name)
            .map(|name| {
                (
                    edit_distance(&base.to_ascii_lowercase(), &name.to_ascii_lowercase()),
                    name,
                )
            })
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, name)| name)
    }
}

/// One key of one operator: `"StringEquals": {"aws:PrincipalTag/team": ["a", "b"]}` is one
/// condition with two values.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub(crate) spec: OperatorSpec,
    pub(crate) key: Box<str>,
    pub(crate) key_lower: Box<str>,
    pub(crate) values: Vec<Operand>,
}

/// A condition value, compiled for its operator.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Operand {
    pub(crate) text: Box<str>,
    pub(crate) compiled: Compiled,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Compiled {
    Text(Template),
    Folded(Template),
    Like(Matcher),
    Arn(ArnMatcher),
    Number(Option<f64>),
    Date(Option<i64>),
    Bool(Option<bool>),
    Binary(Option<Vec<u8>>),
    Ip(Option<IpNet>),
}

/// A wildcard pattern, compiled once when it has no variables.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Matcher {
    Static(Pattern),
    Dynamic(Template),
}

impl Matcher {
    pub(crate) fn new(text: &str, variables: bool) -> Self {
        let template = Template::new(text, variables);
        if template.has_variables() {
            Self::Dynamic(template)
        } else {
            Self::Static(Pattern::new(text))
        }
    }

    pub(crate) fn matches(&self, request: &Request<'_>, text: &str) -> bool {
        match self {
            Self::Static(pattern) => pattern.matches(text),
            Self::Dynamic(template) => template
                .resolve_pattern(&|key| request.single(key), false)
                .is_some_and(|pattern| pattern.matches(text)),
        }
    }
}

/// An ARN condition value. "Each of the six colon-delimited components of the ARN is checked
/// separately" (IAM User Guide, ARN condition operators): `*` and `?` never cross a `:` between
/// the first five components, and the sixth (resource) component is everything after the fifth
/// colon. A value with fewer than six components therefore matches no ARN at all (so a negated
/// operator is true for every ARN); see docs/policy-engine.md for the evidence. The components
/// are split on the text as written, colons inside `${...}` excepted, so a variable's value never
/// shifts them, and its `*`, `?` and `:` are literal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ArnMatcher {
    Static(Box<[Pattern; 6]>),
    /// Variables: a template per component.
    Dynamic(Box<[Template; 6]>),
    /// Fewer than six components: matches nothing.
    Short,
}

/// A `Resource`/`NotResource` ARN pattern, matched component by component as [`ArnMatcher`]
/// except that IAM reads the components a shorter pattern leaves out as `*` (its own error
/// texts re-render `arn:b:c:d` as `arn:b:c:d:*:*`), which is also the IAM User Guide's "if the
/// `*` wildcard is the last character of a resource ARN segment, it can expand to match beyond
/// the colon boundaries": `arn:aws:sns:us-east-1:*` is `arn:aws:sns:us-east-1:*:*`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ArnPattern {
    /// `"*"`: every resource.
    Any,
    Parts(Box<[Pattern; 6]>),
}

impl ArnPattern {
    pub(crate) fn new(text: &str) -> Self {
        if text == "*" {
            return Self::Any;
        }
        let mut parts = text.splitn(6, ':');
        Self::Parts(Box::new(std::array::from_fn(|_| {
            Pattern::new(parts.next().unwrap_or("*"))
        })))
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Parts(patterns) => split_arn(text)
                .is_some_and(|parts| patterns.iter().zip(parts).all(|(p, t)| p.matches(t))),
        }
    }
}

impl ArnMatcher {
    fn new(text: &str, variables: bool) -> Self {
        let Some(parts) = split_arn_pattern(text, variables) else {
            return Self::Short;
        };
        let templates = parts.map(|p| Template::new(p, variables));
        if templates.iter().any(Template::has_variables) {
            Self::Dynamic(Box::new(templates))
        } else {
            Self::Static(Box::new(parts.map(Pattern::new)))
        }
    }

    fn matches(&self, request: &Request<'_>, text: &str) -> bool {
        let lookup = |key: &str| request.single(key);
        let Some(parts) = split_arn(text) else {
            return false;
        };
        match self {
            Self::Short => false,
            Self::Static(patterns) => patterns.iter().zip(parts).all(|(p, t)| p.matches(t)),
            Self::Dynamic(templates) => templates.iter().zip(parts).all(|(template, part)| {
                template
                    .resolve_pattern(&lookup, false)
                    .is_some_and(|p| p.matches(part))
            }),
        }
    }
}

/// Splits text at its first five colons; `None` if it has fewer.
pub(crate) fn split_arn(text: &str) -> Option<[&str; 6]> {
    let mut parts = text.splitn(6, ':');
    let mut out = [""; 6];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// Splits a policy's ARN pattern at its first five colons, not counting colons inside `${...}`
/// when the policy has variables (`arn:aws:iam::${aws:PrincipalAccount}:role/*`); `None` if it
/// has fewer than six components.
pub(crate) fn split_arn_pattern(text: &str, variables: bool) -> Option<[&str; 6]> {
    let fields = pattern_fields(text, variables);
    let mut out = [""; 6];
    if fields.len() < out.len() {
        return None;
    }
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = field;
    }
    Some(out)
}

/// How many colon-separated components an ARN pattern has, counting at most six.
pub(crate) fn arn_components(text: &str, variables: bool) -> usize {
    pattern_fields(text, variables).len()
}

/// The pattern's first six components (the sixth runs to the end), as [`split_arn_pattern`]
/// splits them.
fn pattern_fields(text: &str, variables: bool) -> Vec<&str> {
    let variables = variables && text.contains("${");
    let mut fields = Vec::with_capacity(6);
    let mut start = 0;
    let mut in_variable = false;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => in_variable = true,
            b'}' => in_variable = false,
            b':' if !in_variable && fields.len() < 5 => {
                fields.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(text.get(start..).unwrap_or_default());
    fields
}

/// An IPv4 or IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { address, prefix })
    }

    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl Condition {
    /// Compiles one condition key's values; `Err` carries a value that the operator rejects
    /// (dates, which IAM's legacy parser checks).
    pub(crate) fn new(
        spec: OperatorSpec,
        key: &str,
        values: Vec<String>,
        variables: bool,
    ) -> Result<Self, String> {
        let variables = variables && spec.operator.takes_variables();
        let mut compiled = Vec::with_capacity(values.len());
        for text in values {
            let c = compile(spec.operator, &text, variables)?;
            compiled.push(Operand {
                text: text.into_boxed_str(),
                compiled: c,
            });
        }
        Ok(Self {
            spec,
            key: key.into(),
            key_lower: key.to_lowercase().into(),
            values: compiled,
        })
    }

    /// The operator.
    pub fn operator(&self) -> OperatorSpec {
        self.spec
    }

    /// The condition key as written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The values as written.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|v| &*v.text)
    }

    /// Whether the request satisfies this condition.
    pub(crate) fn evaluate(&self, request: &Request<'_>) -> bool {
        let found = request.value(&self.key_lower).filter(|v| !v.is_empty());
        if self.spec.operator == Operator::Null {
            let absent = found.is_none();
            return self.values.iter().any(|v| match v.compiled {
                Compiled::Bool(Some(want_absent)) => want_absent == absent,
                _ => false,
            });
        }
        let Some(found) = found else {
            return match (self.spec.if_exists, self.spec.qualifier) {
                (true, _) => true,
                (false, Some(SetQualifier::ForAllValues)) => true,
                (false, Some(SetQualifier::ForAnyValue)) => false,
                (false, None) => self.spec.operator.is_negated(),
            };
        };
        let negated = self.spec.operator.is_negated();
        // Whether one request value matches any policy value, under the positive operator.
        let matches_any = |value: &str| {
            self.values
                .iter()
                .any(|operand| operand.matches(self.spec.operator, request, value))
        };
        match self.spec.qualifier {
            Some(SetQualifier::ForAllValues) => found.iter().all(|v| matches_any(v) != negated),
            Some(SetQualifier::ForAnyValue) => found.iter().any(|v| matches_any(v) != negated),
            None => match found {
                Values::One(v) => matches_any(v) != negated,
                // A multivalued key without a qualifier: true if any value matches (for a
                // negated operator: if none does).
                Values::Many(_) => found.iter().any(matches_any) != negated,
            },
        }
    }
}

fn compile(operator: Operator, text: &str, variables: bool) -> Result<Compiled, String> {
    use Operator as O;
    Ok(match operator {
        O::StringEquals | O::StringNotEquals => Compiled::Text(Template::new(text, variables)),
        O::StringEqualsIgnoreCase | O::StringNotEqualsIgnoreCase => {
            Compiled::Folded(Template::new(text, variables))
        }
        O::StringLike | O::StringNotLike => Compiled::Like(Matcher::new(text, variables)),
        O::ArnEquals | O::ArnLike | O::ArnNotEquals | O::ArnNotLike => {
            Compiled::Arn(ArnMatcher::new(text, variables))
        }
        O::NumericEquals
        | O::NumericNotEquals
        | O::NumericLessThan
        | O::NumericLessThanEquals
        | O::NumericGreaterThan
        | O::NumericGreaterThanEquals => Compiled::Number(parse_number(text)),
        O::DateEquals
        | O::DateNotEquals
        | O::DateLessThan
        | O::DateLessThanEquals
        | O::DateGreaterThan
        | O::DateGreaterThanEquals => Compiled::Date(Some(
            crate::date::parse_millis(text).ok_or_else(|| text.to_owned())?,
        )),
        O::Bool | O::Null => Compiled::Bool(parse_bool(text)),
        O::BinaryEquals => Compiled::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok(),
        ),
        O::IpAddress | O::NotIpAddress => Compiled::Ip(IpNet::parse(text)),
    })
}

impl Operand {
    /// Whether the request value `value` matches this policy value under the positive form of
    /// `operator` (the caller negates for negated operators).
    fn matches(&self, operator: Operator, request: &Request<'_>, value: &str) -> bool {
        use Operator as O;
        match &self.compiled {
            Compiled::Text(template) => match template.as_static() {
                Some(s) => s == value,
                None => template
                    .resolve(&|key| request.single(key))
                    .is_some_and(|resolved| resolved == value),
            },
            Compiled::Folded(template) => match template.as_static() {
                Some(s) => eq_ignore_case(s, value),
                None => template
                    .resolve(&|key| request.single(key))
                    .is_some_and(|resolved| eq_ignore_case(&resolved, value)),
            },
            Compiled::Like(matcher) => matcher.matches(request, value),
            Compiled::Arn(matcher) => matcher.matches(request, value),
            Compiled::Number(policy) => match (policy, parse_number(value)) {
                (Some(p), Some(v)) => match operator {
                    O::NumericEquals | O::NumericNotEquals => v == *p,
                    O::NumericLessThan => v < *p,
                    O::NumericLessThanEquals => v <= *p,
                    O::NumericGreaterThan => v > *p,
                    O::NumericGreaterThanEquals => v >= *p,
                    _ => false,
                },
                _ => false,
            },
            Compiled::Date(policy) => match (policy, crate::date::parse_millis(value)) {
                (Some(p), Some(v)) => match operator {
                    O::DateEquals | O::DateNotEquals => v == *p,
                    O::DateLessThan => v < *p,
                    O::DateLessThanEquals => v <= *p,
                    O::DateGreaterThan => v > *p,
                    O::DateGreaterThanEquals => v >= *p,
                    _ => false,
                },
                _ => false,
            },
            Compiled::Bool(policy) => policy.is_some_and(|p| parse_bool(value) == Some(p)),
            Compiled::Binary(policy) => policy.as_ref().is_some_and(|p| {
                match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
                    Ok(bytes) => bytes == *p,
                    Err(_) => value.as_bytes() == p.as_slice(),
                }
            }),
            Compiled::Ip(net) => match (net, value.trim().parse::<IpAddr>()) {
                (Some(net), Ok(address)) => net.contains(address),
                _ => false,
            },
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    // Rust also reads `inf` and `NaN`, which are not numbers in a policy.
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let insert = current.get(j).copied().unwrap_or(0) + 1;
            let delete = previous.get(j + 1).copied().unwrap_or(0) + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_operator_names_with_qualifiers_and_if_exists() {
        let spec = OperatorSpec::parse("ForAllValues:StringNotLikeIfExists").unwrap();
        assert_eq!(spec.qualifier, Some(SetQualifier::ForAllValues));
        assert_eq!(spec.operator, Operator::StringNotLike);
        assert!(spec.if_exists);
        assert_eq!(spec.name(), "ForAllValues:StringNotLikeIfExists");
        for op in ALL {
            assert_eq!(OperatorSpec::parse(op.name()).unwrap().operator, op);
        }
        for bad in [
            "NullIfExists",
            "stringequals",
            "ForAnyValue::StringEquals",
            "StringEqualz",
            "ForSomeValues:StringEquals",
            "",
        ] {
            assert_eq!(OperatorSpec::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn suggests_the_operator_that_was_meant() {
        assert_eq!(OperatorSpec::suggest("StringEqualz"), Some("StringEquals"));
        assert_eq!(OperatorSpec::suggest("stringlike"), Some("StringLike"));
        assert_eq!(OperatorSpec::suggest("ForAnyValue:ArnLik"), Some("ArnLike"));
        assert_eq!(OperatorSpec::suggest("Completely"), None);
    }

    #[test]
    fn ip_networks() {
        let net = IpNet::parse("203.0.113.0/24").unwrap();
        assert!(net.contains("203.0.113.200".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        let one = IpNet::parse("203.0.113.5").unwrap();
        assert!(one.contains("203.0.113.5".parse().unwrap()));
        assert!(!one.contains("203.0.113.6".parse().unwrap()));
        let v6 = IpNet::parse("2001:DB8:1234:5678::/64").unwrap();
        assert!(v6.contains("2001:db8:1234:5678::42".parse().unwrap()));
        assert!(!v6.contains("203.0.113.5".parse().unwrap()));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(IpNet::parse("nope"), None);
    }

    #[test]
    fn arn_patterns_match_component_by_component() {
        let p = ArnPattern::new("arn:aws:someservice:*:111122223333:finance/*");
        assert!(p.matches("arn:aws:someservice:us-east-2:111122223333:finance/doc.txt"));
        assert!(!p.matches(
            "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
        ));
        assert!(ArnPattern::new("arn:aws:s3:::b/*").matches("arn:aws:s3:::b/k:with:colons"));
        assert!(!ArnPattern::new("arn:aws:s3:::b/*").matches("not-an-arn"));
    }

    #[test]
    fn short_resource_patterns_read_the_missing_components_as_stars() {
        let topic = "arn:aws:sns:us-east-1:111122223333:alerts";
        assert!(ArnPattern::new("arn:aws:sns:us-east-1:*").matches(topic));
        assert!(ArnPattern::new("arn:aws:sns:us-*").matches(topic));
        assert!(ArnPattern::new("arn:aws:sns").matches(topic));
        assert!(ArnPattern::new("arn:aws:sns:us-east-1:111122223333").matches(topic));
        assert!(!ArnPattern::new("arn:aws:sns:eu-west-1:*").matches(topic));
        // The stars stand for whole components: `*` in the region never reaches the account.
        assert!(!ArnPattern::new("arn:aws:sns:*:alerts").matches(topic));
        assert!(ArnPattern::new("*").matches("anything at all"));
    }

    #[test]
    fn condition_arn_patterns_need_all_six_components() {
        assert_eq!(ArnMatcher::new("arn:aws:iam::*", true), ArnMatcher::Short);
        assert_eq!(
            ArnMatcher::new("arn:aws:sns:us-east-1:*", false),
            ArnMatcher::Short
        );
        assert_eq!(ArnMatcher::new("arn:aws:*", true), ArnMatcher::Short);
        assert!(matches!(
            ArnMatcher::new("arn:aws:iam::*:*", true),
            ArnMatcher::Static(_)
        ));
    }

    #[test]
    fn colons_inside_variables_do_not_split_components() {
        let written = "arn:aws:iam::${aws:PrincipalAccount}:role/*";
        assert_eq!(
            split_arn_pattern(written, true),
            Some(["arn", "aws", "iam", "", "${aws:PrincipalAccount}", "role/*"])
        );
        // Without variables (an old policy) `${` is text, and its colon splits.
        assert_eq!(
            split_arn_pattern(written, false),
            Some(["arn", "aws", "iam", "", "${aws", "PrincipalAccount}:role/*"])
        );
        assert_eq!(
            arn_components("arn:aws:iam::${aws:PrincipalAccount}", true),
            5
        );
        assert_eq!(arn_components("arn:aws:iam::*", false), 5);
        assert_eq!(arn_components("arn:aws:s3:::b:c:d", false), 6);
    }

    #[test]
    fn numbers_are_finite_decimals() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number(" -2.5e1 "), Some(-25.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("1e999"), None);
        assert_eq!(parse_number(""), None);
    }
}
