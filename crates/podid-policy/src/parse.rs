//! From a JSON document tree to a validated [`Policy`], with the rules of each policy kind.

use podid_types::AccountId;

use crate::ast::{
    ActionBlock, ActionEntry, AwsPrincipal, EntryKind, Policy, PolicyKind, PrincipalBlock,
    PrincipalEntry, Principals, ResourceBlock, ResourceEntry, ResourceMatcher, SourcePosition,
    Statement, Version,
};
use crate::condition::{ArnPattern, Condition, OperatorSpec};
use crate::error::{ErrorKind, PolicyError, PolicyErrors};
use crate::json::{self, Limits, LineIndex, Member, Node, Span, Value};
use crate::variables::Template;
use crate::wildcard::Pattern;

/// How strictly to read a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    kind: PolicyKind,
    api_rules: bool,
    size_limit: bool,
}

impl ParseOptions {
    /// The rules IAM and STS apply when a policy of `kind` is saved or passed to an API: the
    /// grammar, the kind's element rules, the character set, the size limit, and, for identity
    /// policies and boundaries, `Version` `2012-10-17`.
    pub fn new(kind: PolicyKind) -> Self {
        Self {
            kind,
            api_rules: true,
            size_limit: true,
        }
    }

    /// The grammar and the kind's element rules only, as a simulator reads policies it is given:
    /// no size limit, no character-set or version requirement.
    pub fn simulation(kind: PolicyKind) -> Self {
        Self {
            kind,
            api_rules: false,
            size_limit: false,
        }
    }

    /// The API rules without the per-document size limit, for policies whose limit is an
    /// aggregate the caller checks (inline policies: 10,240 characters per role, 2,048 per user).
    #[must_use]
    pub fn without_size_limit(mut self) -> Self {
        self.size_limit = false;
        self
    }

    /// The kind of policy.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }
}

impl Policy {
    /// Parses and validates a policy document of `kind` as IAM does when it is saved.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Self, PolicyErrors> {
        Self::parse_with(text, ParseOptions::new(kind))
    }

    /// Parses and validates a policy document with the given options.
    pub fn parse_with(text: &str, options: ParseOptions) -> Result<Self, PolicyErrors> {
        let lines = LineIndex::new(text);
        let mut checker = Checker {
            source: text,
            lines: &lines,
            options,
            errors: Vec::new(),
            path_root: "$".into(),
        };
        if options.api_rules
            && let Some((offset, c)) = text
                .char_indices()
                .find(|(_, c)| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
        {
            checker.push_at(ErrorKind::InvalidCharacter(c), "$".into(), offset, None);
            return Err(checker.finish_err());
        }
        let node = match json::parse(text, Limits::POLICY) {
            Ok(node) => node,
            Err(e) => {
                checker.push_at(ErrorKind::Json(e.kind), "$".into(), e.offset, None);
                return Err(checker.finish_err());
            }
        };
        checker.policy(&node)
    }

    /// Reads a policy from a node of a larger JSON document (a case file): positions are in
    /// `source`, and paths start with `path`.
    pub fn from_json(
        source: &str,
        lines: &LineIndex,
        node: &Node,
        path: &str,
        options: ParseOptions,
    ) -> Result<Self, PolicyErrors> {
        let mut checker = Checker {
            source,
            lines,
            options,
            errors: Vec::new(),
            path_root: path.into(),
        };
        checker.policy(node)
    }
}

struct Checker<'a> {
    source: &'a str,
    lines: &'a LineIndex,
    options: ParseOptions,
    errors: Vec<PolicyError>,
    path_root: String,
}

/// Where in the document a value is: its JSON path and the statement it belongs to.
#[derive(Clone)]
struct At<'s> {
    path: String,
    statement: Option<(usize, Option<&'s str>)>,
}

impl At<'_> {
    fn field(&self, name: &str) -> Self {
        Self {
            path: format!("{}.{name}", self.path),
            statement: self.statement,
        }
    }

    fn index(&self, index: usize) -> Self {
        Self {
            path: format!("{}[{index}]", self.path),
            statement: self.statement,
        }
    }
}

/// The most problems reported for one document.
const MAX_ERRORS: usize = 100;

const ASSUME_ROLE_ACTIONS: [&str; 6] = [
    "sts:assumerole",
    "sts:assumerolewithsaml",
    "sts:assumerolewithwebidentity",
    "sts:setcontext",
    "sts:setsourceidentity",
    "sts:tagsession",
];

const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-eusc",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-us-gov",
];

const IAM_RESOURCE_PREFIXES: [&str; 13] = [
    "user/",
    "federated-user/",
    "role/",
    "group/",
    "instance-profile/",
    "mfa/",
    "server-certificate/",
    "policy/",
    "sms-mfa/",
    "saml-provider/",
    "oidc-provider/",
    "report/",
    "access-report/",
];

const BUILT_IN_PROVIDERS: [&str; 4] = [
    "accounts.google.com",
    "cognito-identity.amazonaws.com",
    "graph.facebook.com",
    "www.amazon.com",
];

impl<'a> Checker<'a> {
    fn policy(&mut self, node: &Node) -> Result<Policy, PolicyErrors> {
        let kind = self.options.kind;
        let root = At {
            path: self.path_root.clone(),
            statement: None,
        };
        let Value::Object(members) = &node.value else {
            self.push(ErrorKind::NotAnObject, &root, node.span);
            return Err(self.finish_err());
        };
        // The size limit first: a document far over it is not worth compiling.
        if self.options.api_rules && self.options.size_limit {
            let text = self
                .source
                .get(node.span.start..node.span.end)
                .unwrap_or_default();
            let size = text.chars().filter(|c| !c.is_whitespace()).count();
            let limit = kind.size_limit();
            if size > limit {
                self.push(ErrorKind::TooLarge { size, limit }, &root, node.span);
                return Err(self.finish_err());
            }
        }
        let mut version = Version::Absent;
        let mut version_index = None;
        let mut id = None;
        let mut statement_node = None;
        for (index, member) in members.iter().enumerate() {
            let at = root.field(&member.key);
            match member.key.as_str() {
                "Version" => {
                    version_index = Some(index);
                    match &member.value.value {
                        Value::String(s) if s == "2012-10-17" => version = Version::V2012_10_17,
                        Value::String(s) if s == "2008-10-17" => version = Version::V2008_10_17,
                        Value::String(s) => {
                            self.push(ErrorKind::UnknownVersion(s.clone()), &at, member.value.span)
                        }
                        other => self.wrong_type("a string", other, &at, member.value.span),
                    }
                }
                "Id" => match &member.value.value {
                    Value::String(s) => id = Some(s.clone()),
                    other => self.wrong_type("a string", other, &at, member.value.span),
                },
                "Statement" => statement_node = Some((index, member)),
                _ => self.push(
                    ErrorKind::UnknownField(member.key.clone()),
                    &at,
                    member.key_span,
                ),
            }
        }
        if self.options.api_rules && matches!(kind, PolicyKind::Identity | PolicyKind::Boundary) {
            if version != Version::V2012_10_17 && !self.has_stage_two_error() {
                let span = members
                    .iter()
                    .find(|m| m.key == "Version")
                    .map_or(node.span, |m| m.value.span);
                self.push(ErrorKind::OldVersion, &root.field("Version"), span);
            }
            if let (Some((statement_index, member)), Some(version_index)) =
                (statement_node, version_index)
                && statement_index < version_index
                && matches!(member.value.value, Value::Object(_))
            {
                self.push(
                    ErrorKind::StatementBeforeVersion,
                    &root.field("Statement"),
                    member.key_span,
                );
            }
        }
        let mut statements = Vec::new();
        match statement_node {
            None => self.push(ErrorKind::MissingStatement, &root, node.span),
            Some((_, member)) => {
                let at = root.field("Statement");
                match &member.value.value {
                    Value::Object(_) => {
                        statements.extend(self.statement(&member.value, 0, &at, version))
                    }
                    Value::Array(items) if items.is_empty() => {
                        self.push(ErrorKind::EmptyStatement, &at, member.value.span);
                    }
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            statements.extend(self.statement(item, i, &at.index(i), version));
                        }
                    }
                    other => self.wrong_type(
                        "an object or an array of objects",
                        other,
                        &at,
                        member.value.span,
                    ),
                }
            }
        }
        self.duplicate_sids(&statements, &root);
        if let Some(errors) = PolicyErrors::new(std::mem::take(&mut self.errors)) {
            return Err(errors);
        }
        Ok(Policy {
            kind,
            version,
            id,
            statements,
        })
    }

    fn statement(
        &mut self,
        node: &Node,
        index: usize,
        at: &At<'_>,
        version: Version,
    ) -> Option<Statement> {
        let kind = self.options.kind;
        let Value::Object(members) = &node.value else {
            self.wrong_type("an object", &node.value, at, node.span);
            return None;
        };
        let sid = members
            .iter()
            .find(|m| m.key == "Sid")
            .and_then(|m| m.value.as_str())
            .map(str::to_owned);
        let at = At {
            path: at.path.clone(),
            statement: Some((index, sid.as_deref())),
        };
        let errors_before = self.errors.len();
        let mut effect = None;
        let mut principal: Option<(&Member, bool)> = None;
        let mut action: Option<(&Member, bool)> = None;
        let mut resource: Option<(&Member, bool)> = None;
        let mut condition = None;
        for member in members {
            let field_at = at.field(&member.key);
            let slot = match member.key.as_str() {
                "Sid" => {
                    match &member.value.value {
                        Value::String(s) => {
                            // IAM's rule for the policies it stores; not verified for trust,
                            // session or resource policies (S3 accepts any text).
                            if self.options.api_rules
                                && matches!(kind, PolicyKind::Identity | PolicyKind::Boundary)
                                && !s.chars().all(|c| c.is_ascii_alphanumeric())
                            {
                                self.push(
                                    ErrorKind::InvalidSid(s.clone()),
                                    &field_at,
                                    member.value.span,
                                );
                            }
                        }
                        other => self.wrong_type("a string", other, &field_at, member.value.span),
                    }
                    continue;
                }
                "Effect" => {
                    effect = self.effect(member, &field_at);
                    continue;
                }
                "Condition" => {
                    condition = Some(member);
                    continue;
                }
                "Principal" => (&mut principal, false, ("Principal", "NotPrincipal")),
                "NotPrincipal" => (&mut principal, true, ("Principal", "NotPrincipal")),
                "Action" => (&mut action, false, ("Action", "NotAction")),
                "NotAction" => (&mut action, true, ("Action", "NotAction")),
                "Resource" => (&mut resource, false, ("Resource", "NotResource")),
                "NotResource" => (&mut resource, true, ("Resource", "NotResource")),
                _ => {
                    self.push(
                        ErrorKind::UnknownField(member.key.clone()),
                        &field_at,
                        member.key_span,
                    );
                    continue;
                }
            };
            let (slot, negated, (a, b)) = slot;
            if slot.is_some() {
                self.push(
                    ErrorKind::ConflictingFields(a, b),
                    &field_at,
                    member.key_span,
                );
            } else {
                *slot = Some((member, negated));
            }
        }
        if effect.is_none() && !members.iter().any(|m| m.key == "Effect") {
            self.push(ErrorKind::MissingEffect, &at, node.span);
        }

        // Principal / NotPrincipal.
        let principal_block = match (kind.names_principals(), principal) {
            (false, Some((member, _))) => {
                self.push(
                    ErrorKind::ProhibitedPrincipal,
                    &at.field(&member.key),
                    member.key_span,
                );
                None
            }
            (false, None) => None,
            (true, None) => {
                self.push(ErrorKind::MissingPrincipal, &at, node.span);
                None
            }
            (true, Some((member, negated))) => {
                if negated && kind == PolicyKind::Trust {
                    self.push(
                        ErrorKind::ProhibitedNotPrincipal,
                        &at.field(&member.key),
                        member.key_span,
                    );
                }
                self.principals(member, negated, &at.field(&member.key))
            }
        };

        // Action / NotAction.
        let action_block = match action {
            None => {
                self.push(ErrorKind::MissingAction, &at, node.span);
                None
            }
            Some((member, negated)) => {
                let field_at = at.field(&member.key);
                let items = self.strings(&member.value, &field_at);
                if items.is_empty() && !self.has_error_at(&field_at.path) {
                    self.push(ErrorKind::MissingAction, &at, node.span);
                }
                let entries: Vec<ActionEntry> = items
                    .into_iter()
                    .filter_map(|(text, item_at, span)| self.action(&text, negated, &item_at, span))
                    .collect();
                Some(ActionBlock {
                    negated,
                    items: entries,
                })
            }
        };

        // Resource / NotResource.
        let resource_block = match (kind, resource) {
            (PolicyKind::Trust, Some((member, _))) => {
                let field = if member.key == "Resource" {
                    "Resource"
                } else {
                    "NotResource"
                };
                self.push(
                    ErrorKind::ProhibitedResource(field),
                    &at.field(&member.key),
                    member.key_span,
                );
                None
            }
            (PolicyKind::Trust, None) => None,
            // A resource-based policy without `Resource` applies to its own resource (ECR
            // repository policies, for one, have none).
            (PolicyKind::Resource, None) => None,
            (_, None) => {
                self.push(ErrorKind::MissingResource, &at, node.span);
                None
            }
            (_, Some((member, negated))) => {
                let field_at = at.field(&member.key);
                let items = self.strings(&member.value, &field_at);
                if items.is_empty() && !self.has_error_at(&field_at.path) {
                    self.push(ErrorKind::MissingResource, &at, node.span);
                }
                let entries = items
                    .into_iter()
                    .filter_map(|(text, item_at, span)| {
                        self.resource(&text, version, &item_at, span)
                    })
                    .collect();
                Some(ResourceBlock {
                    negated,
                    items: entries,
                })
            }
        };

        let conditions = match condition {
            Some(member) => self.conditions(&member.value, &at.field("Condition"), version),
            None => Vec::new(),
        };

        if self.errors.len() > errors_before {
            return None;
        }
        let start = self.lines.position(self.source, node.span.start);
        let end = self.lines.position(self.source, node.span.end);
        Some(Statement {
            sid,
            effect: effect?,
            principal: principal_block,
            action: action_block?,
            resource: resource_block,
            conditions,
            position: SourcePosition {
                start: (start.line, start.column),
                end: (end.line, end.column),
            },
        })
    }

    fn effect(&mut self, member: &Member, at: &At<'_>) -> Option<crate::Effect> {
        match &member.value.value {
            Value::String(s) if s == "Allow" => Some(crate::Effect::Allow),
            Value::String(s) if s == "Deny" => Some(crate::Effect::Deny),
            Value::String(s)
                if s.eq_ignore_ascii_case("allow") || s.eq_ignore_ascii_case("deny") =>
            {
                self.push(ErrorKind::EffectCase(s.clone()), at, member.value.span);
                None
            }
            Value::String(s) => {
                self.push(ErrorKind::InvalidEffect(s.clone()), at, member.value.span);
                None
            }
            other => {
                self.wrong_type("`\"Allow\"` or `\"Deny\"`", other, at, member.value.span);
                None
            }
        }
    }

    fn action(
        &mut self,
        text: &str,
        negated: bool,
        at: &At<'_>,
        span: Span,
    ) -> Option<ActionEntry> {
        if text != "*" {
            let Some((vendor, _)) = text.split_once(':') else {
                self.push(ErrorKind::ActionWithoutVendor(text.to_owned()), at, span);
                return None;
            };
            if vendor.is_empty() {
                self.push(ErrorKind::ActionWithoutVendor(text.to_owned()), at, span);
                return None;
            }
            if text.matches(':').count() > 1 {
                self.push(ErrorKind::ActionColons(text.to_owned()), at, span);
                return None;
            }
            if !vendor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '?'))
            {
                self.push(ErrorKind::InvalidVendor(vendor.to_owned()), at, span);
                return None;
            }
        }
        let pattern = Pattern::new(&text.to_ascii_lowercase());
        if self.options.kind == PolicyKind::Trust
            && !negated
            && !ASSUME_ROLE_ACTIONS.iter().any(|a| pattern.matches(a))
        {
            self.push(ErrorKind::NotAssumeRoleAction(text.to_owned()), at, span);
            return None;
        }
        Some(ActionEntry {
            text: text.into(),
            pattern,
        })
    }

    fn resource(
        &mut self,
        text: &str,
        version: Version,
        at: &At<'_>,
        span: Span,
    ) -> Option<ResourceEntry> {
        if text == "*" {
            return Some(ResourceEntry {
                text: text.into(),
                matcher: ResourceMatcher::Static(ArnPattern::new(text)),
            });
        }
        if !text.contains(':') {
            self.push(ErrorKind::ResourceNotArn(text.to_owned()), at, span);
            return None;
        }
        let parts: Vec<&str> = text.split(':').collect();
        let partition = parts.get(1).copied().unwrap_or_default();
        let service = parts.get(2).copied();
        let has_wildcard = |s: &str| s.contains('*') || s.contains('?');
        let Some(service) = service else {
            self.push(ErrorKind::ResourceVendor(text.to_owned()), at, span);
            return None;
        };
        if !has_wildcard(partition) && !PARTITIONS.contains(&partition) {
            let mut rendered: Vec<&str> = Vec::with_capacity(parts.len().max(6));
            rendered.push("arn");
            rendered.extend(parts.iter().skip(1));
            while rendered.len() < 6 {
                rendered.push("*");
            }
            self.push(
                ErrorKind::InvalidPartition {
                    partition: partition.to_owned(),
                    rendered: rendered.join(":"),
                },
                at,
                span,
            );
            return None;
        }
        if service.is_empty() || (parts.len() < 6 && text.contains("::")) {
            self.push(ErrorKind::LegacyArn(text.to_owned()), at, span);
            return None;
        }
        if has_wildcard(service) {
            self.push(ErrorKind::ResourceVendor(text.to_owned()), at, span);
            return None;
        }
        let region = parts.get(3).copied().unwrap_or_default();
        let account = parts.get(4).copied().unwrap_or_default();
        if service == "iam" {
            if !region.is_empty() && !has_wildcard(region) {
                self.push(ErrorKind::IamRegion(text.to_owned()), at, span);
                return None;
            }
            if let Some(resource) = crate::condition::split_arn(text).map(|p| p[5]) {
                let literal = resource.split(['*', '?']).next().unwrap_or_default();
                let wild = literal.len() < resource.len();
                let known = resource == "root"
                    || IAM_RESOURCE_PREFIXES
                        .iter()
                        .any(|p| resource.starts_with(p) || (wild && p.starts_with(literal)));
                if !(known || wild && "root".starts_with(literal)) {
                    self.push(ErrorKind::IamResourcePath(text.to_owned()), at, span);
                    return None;
                }
            }
        }
        if service == "s3" && !region.is_empty() && account.is_empty() && !has_wildcard(region) {
            self.push(ErrorKind::S3Region(text.to_owned()), at, span);
            return None;
        }
        let matcher = match crate::condition::split_arn(text) {
            Some([p0, p1, p2, p3, p4, resource])
                if version.has_variables() && resource.contains("${") =>
            {
                let template = Template::new(resource, true);
                if template.has_variables() {
                    ResourceMatcher::Dynamic {
                        prefix: Box::new([p0, p1, p2, p3, p4].map(Pattern::new)),
                        resource: template,
                    }
                } else {
                    ResourceMatcher::Static(ArnPattern::new(text))
                }
            }
            _ => ResourceMatcher::Static(ArnPattern::new(text)),
        };
        Some(ResourceEntry {
            text: text.into(),
            matcher,
        })
    }

    fn principals(
        &mut self,
        member: &Member,
        negated: bool,
        at: &At<'_>,
    ) -> Option<PrincipalBlock> {
        let kind = self.options.kind;
        match &member.value.value {
            // A bare `*` in a role trust policy is reported as invalid only by an old, unverified
            // observation; it is accepted, and the linter warns about it.
            Value::String(s) if s == "*" => Some(PrincipalBlock {
                negated,
                principals: Principals::Star,
            }),
            Value::Object(types) => {
                let mut entries = Vec::new();
                for type_member in types {
                    let type_at = at.field(&type_member.key);
                    let upper = match type_member.key.as_str() {
                        "AWS" => "AWS",
                        "Service" => "SERVICE",
                        "Federated" => "FEDERATED",
                        "CanonicalUser" => "CANONICALUSER",
                        other => {
                            self.push(
                                ErrorKind::UnknownPrincipalType(other.to_owned()),
                                &type_at,
                                type_member.key_span,
                            );
                            continue;
                        }
                    };
                    for (text, item_at, span) in self.strings(&type_member.value, &type_at) {
                        match principal_kind(upper, &text, kind) {
                            Some(entry_kind) => entries.push(PrincipalEntry {
                                key: type_member.key.as_str().into(),
                                text: text.into_boxed_str(),
                                kind: entry_kind,
                                bound: None,
                            }),
                            None => self.push(
                                ErrorKind::InvalidPrincipal {
                                    key: upper.into(),
                                    value: text,
                                },
                                &item_at,
                                span,
                            ),
                        }
                    }
                }
                if entries.is_empty() && !self.has_error_at(&at.path) {
                    self.push(ErrorKind::MissingPrincipal, at, member.value.span);
                    return None;
                }
                Some(PrincipalBlock {
                    negated,
                    principals: Principals::Entries(entries),
                })
            }
            other => {
                self.wrong_type(
                    "`\"*\"` or an object such as `{\"AWS\": ...}`",
                    other,
                    at,
                    member.value.span,
                );
                None
            }
        }
    }

    fn conditions(&mut self, node: &Node, at: &At<'_>, version: Version) -> Vec<Condition> {
        let Value::Object(operators) = &node.value else {
            self.wrong_type(
                "an object of condition operators",
                &node.value,
                at,
                node.span,
            );
            return Vec::new();
        };
        let mut conditions = Vec::new();
        for op_member in operators {
            let op_at = at.field(&op_member.key);
            let Value::Object(keys) = &op_member.value.value else {
                self.wrong_type(
                    "an object of condition keys",
                    &op_member.value.value,
                    &op_at,
                    op_member.value.span,
                );
                continue;
            };
            let Some(spec) = OperatorSpec::parse(&op_member.key) else {
                // IAM accepts an unknown operator with no keys, and ignores it.
                if !keys.is_empty() {
                    self.push(
                        ErrorKind::UnknownOperator {
                            operator: op_member.key.clone(),
                            suggestion: OperatorSpec::suggest(&op_member.key),
                        },
                        &op_at,
                        op_member.key_span,
                    );
                }
                continue;
            };
            for key_member in keys {
                let key_at = op_at.field(&key_member.key);
                let values = self.condition_values(&key_member.value, &key_at);
                match Condition::new(spec, &key_member.key, values, version.has_variables()) {
                    Ok(condition) => conditions.push(condition),
                    Err(bad) => {
                        self.push(ErrorKind::InvalidDate(bad), &key_at, key_member.value.span)
                    }
                }
            }
        }
        conditions
    }

    fn condition_values(&mut self, node: &Node, at: &At<'_>) -> Vec<String> {
        let scalar = |value: &Value| match value {
            Value::String(s) | Value::Number(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        match &node.value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match scalar(&item.value) {
                        Some(s) => out.push(s),
                        None => self.wrong_type(
                            "a string, number or boolean",
                            &item.value,
                            &at.index(i),
                            item.span,
                        ),
                    }
                }
                out
            }
            value => match scalar(value) {
                Some(s) => vec![s],
                None => {
                    self.wrong_type(
                        "a string, number or boolean, or an array of them",
                        value,
                        at,
                        node.span,
                    );
                    Vec::new()
                }
            },
        }
    }

    /// A string or an array of strings, each with its location.
    fn strings<'s>(&mut self, node: &Node, at: &At<'s>) -> Vec<(String, At<'s>, Span)> {
        match &node.value {
            Value::String(s) => vec![(s.clone(), at.clone(), node.span)],
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match &item.value {
                        Value::String(s) => out.push((s.clone(), at.index(i), item.span)),
                        other => self.wrong_type("a string", other, &at.index(i), item.span),
                    }
                }
                out
            }
            other => {
                self.wrong_type("a string or an array of strings", other, at, node.span);
                Vec::new()
            }
        }
    }

    fn duplicate_sids(&mut self, statements: &[Statement], root: &At<'_>) {
        let mut seen = std::collections::HashSet::new();
        for (index, statement) in statements.iter().enumerate() {
            let Some(sid) = statement.sid.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            if !seen.insert(sid) {
                let at = At {
                    path: format!("{}.Statement[{index}].Sid", root.path),
                    statement: Some((index, Some(sid))),
                };
                self.errors.push(PolicyError {
                    kind: ErrorKind::DuplicateSid(sid.to_owned()),
                    policy_kind: self.options.kind,
                    path: at.path,
                    position: None,
                    statement: Some((index, Some(sid.to_owned()))),
                });
            }
        }
    }

    fn wrong_type(&mut self, expected: &'static str, found: &Value, at: &At<'_>, span: Span) {
        self.push(
            ErrorKind::WrongType {
                expected,
                found: found.kind(),
            },
            at,
            span,
        );
    }

    fn push(&mut self, kind: ErrorKind, at: &At<'_>, span: Span) {
        let statement = at.statement.map(|(i, sid)| (i, sid.map(str::to_owned)));
        self.push_at(kind, at.path.clone(), span.start, statement);
    }

    fn push_at(
        &mut self,
        kind: ErrorKind,
        path: String,
        offset: usize,
        statement: Option<(usize, Option<String>)>,
    ) {
        // Enough to fix a document by; a pathological one does not get a pathological report.
        if self.errors.len() >= MAX_ERRORS {
            return;
        }
        self.errors.push(PolicyError {
            kind,
            policy_kind: self.options.kind,
            path,
            position: Some(self.lines.position(self.source, offset)),
            statement,
        });
    }

    fn has_error_at(&self, path: &str) -> bool {
        self.errors.iter().any(|e| e.path.starts_with(path))
    }

    fn has_stage_two_error(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.stage() <= crate::error::Stage::Syntax)
    }

    fn finish_err(&mut self) -> PolicyErrors {
        PolicyErrors::new(std::mem::take(&mut self.errors)).unwrap_or_else(|| {
            // Only reached if a check failed without saying why: report it as a syntax error.
            PolicyErrors::one(PolicyError {
                kind: ErrorKind::NotAnObject,
                policy_kind: self.options.kind,
                path: self.path_root.clone(),
                position: None,
                statement: None,
            })
        })
    }
}

/// What a principal value names, or `None` if it is not valid for its type.
fn principal_kind(key: &str, text: &str, kind: PolicyKind) -> Option<EntryKind> {
    match key {
        "AWS" => aws_principal(text).map(EntryKind::Aws),
        "SERVICE" => {
            let valid = !text.is_empty()
                && text.contains('.')
                && text.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            valid.then_some(EntryKind::Service)
        }
        "FEDERATED" => {
            if BUILT_IN_PROVIDERS.contains(&text) {
                return Some(EntryKind::Federated);
            }
            let arn: podid_types::Arn = text.parse().ok()?;
            let valid = arn.service() == "iam"
                && arn.account().parse::<AccountId>().is_ok()
                && (arn
                    .resource()
                    .strip_prefix("oidc-provider/")
                    .is_some_and(|r| !r.is_empty())
                    || arn
                        .resource()
                        .strip_prefix("saml-provider/")
                        .is_some_and(|r| !r.is_empty()))
                && !text.contains('*');
            valid.then_some(EntryKind::Federated)
        }
        _ => (kind == PolicyKind::Resource
            && text.len() == 64
            && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(EntryKind::CanonicalUser),
    }
}

fn aws_principal(text: &str) -> Option<AwsPrincipal> {
    if text == "*" {
        return Some(AwsPrincipal::Everyone);
    }
    if let Ok(account) = text.parse::<AccountId>() {
        return Some(AwsPrincipal::Account(account));
    }
    if text.contains(['*', '?']) {
        return None;
    }
    if let Ok(arn) = text.parse::<podid_types::Arn>() {
        // CloudFront origin access identities are users of a pseudo-account, `cloudfront`.
        if arn.service() == "iam"
            && arn.account() == "cloudfront"
            && arn
                .resource()
                .starts_with("user/CloudFront Origin Access Identity ")
        {
            return Some(AwsPrincipal::User);
        }
        let account: AccountId = arn.account().parse().ok()?;
        if !arn.region().is_empty() {
            return None;
        }
        let resource = arn.resource();
        return match arn.service() {
            "iam" if resource == "root" => Some(AwsPrincipal::Account(account)),
            "iam"
                if resource
                    .strip_prefix("user/")
                    .is_some_and(|n| !n.is_empty() && !n.ends_with('/')) =>
            {
                Some(AwsPrincipal::User)
            }
            "iam"
                if resource
                    .strip_prefix("role/")
                    .is_some_and(|n| !n.is_empty() && !n.ends_with('/')) =>
            {
                Some(AwsPrincipal::Role)
            }
            "sts" => {
                let session = resource
                    .strip_prefix("assumed-role/")
                    .and_then(|r| r.split_once('/'))
                    .is_some_and(|(role, session)| {
                        !role.is_empty() && !session.is_empty() && !session.contains('/')
                    });
                if session {
                    Some(AwsPrincipal::AssumedRole)
                } else if resource
                    .strip_prefix("federated-user/")
                    .is_some_and(|n| !n.is_empty())
                {
                    Some(AwsPrincipal::FederatedUser)
                } else {
                    None
                }
            }
            _ => None,
        };
    }
    let unique_id = (text.starts_with("AIDA") || text.starts_with("AROA"))
        && text.len() >= 16
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    unique_id.then_some(AwsPrincipal::UniqueId)
}
