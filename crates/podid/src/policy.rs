//! `podid policy`: validate, lint and simulate IAM policies.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use podid_policy::{
    Case, Context, ContextValue, Decision, Explanation, NamedPolicy, Ownership, ParseOptions,
    Policy, PolicyKind, PolicySet, Principal, Request, Severity,
};
use podid_types::{AccountId, Arn, Clock, SystemClock};
use serde::Serialize;

use crate::Status;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check policy documents as IAM does when they are saved, and lint them.
    ///
    /// Each file is parsed with the rules of its kind: the grammar, the elements the kind allows
    /// or needs (a trust policy names principals and no resources; an identity policy the
    /// reverse), the character set and size limit, and the `Version` IAM requires. Every problem
    /// is reported with its JSON path, line and column, next to the error code and message AWS
    /// returns for the same document. Lint findings flag what IAM accepts but probably does not
    /// do what was meant (unknown global condition keys, values that never match, set operators
    /// on the wrong kind of key).
    ///
    /// Exit code 0 if every file is valid and has no lint errors, 1 if not, 2 if a file cannot be
    /// read.
    ///
    /// Example: podid policy validate --kind trust trust-policy.json
    Validate(ValidateArgs),
    /// Decide requests against policies, as AWS would, and say why.
    ///
    /// With --cases, run policy test files: JSON arrays of cases, each with policies, a request
    /// and the expected decision, in the format of `shared/conformance/README.md` (see the
    /// project README). Every failing case is printed with the expected and actual decision and
    /// the trace, then a line `N passed, M failed`. Exit code 0 if all pass, 1 if any fails, 2 if
    /// a file is malformed (its path and the JSON path of the problem are printed).
    ///
    /// Without --cases, answer one question: may PRINCIPAL perform ACTION on RESOURCE, given the
    /// policies? Exit code 0 if allowed, 1 if denied.
    ///
    /// Examples:
    ///   podid policy simulate --cases tests/policies/*.json
    ///   podid policy simulate --policy s3-read.json --action s3:GetObject --resource arn:aws:s3:::bucket/key
    ///   podid policy simulate --trust-policy trust.json --principal pods.eks.amazonaws.com \
    ///       --action sts:AssumeRole --resource arn:aws:iam::111122223333:role/app \
    ///       --context aws:RequestTag/kubernetes-namespace=prod
    #[command(verbatim_doc_comment)]
    Simulate(Box<SimulateArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The kind of policy the files hold.
    #[arg(long, value_enum, default_value_t = KindArg::Identity)]
    kind: KindArg,
    /// How to print the results.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Policy documents to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Case files to run (JSON arrays of cases). Excludes the single-question options.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["policy", "action", "resource"])]
    cases: Vec<PathBuf>,
    /// A policy of the kind given by --kind (repeatable).
    #[arg(long, value_name = "FILE")]
    policy: Vec<PathBuf>,
    /// The kind of the --policy files.
    #[arg(long, value_enum, default_value_t = KindArg::Identity)]
    kind: KindArg,
    /// An identity-based policy of the principal (repeatable).
    #[arg(long, value_name = "FILE")]
    identity_policy: Vec<PathBuf>,
    /// The trust policy of the role being assumed.
    #[arg(long, value_name = "FILE")]
    trust_policy: Vec<PathBuf>,
    /// A resource-based policy of the resource, such as a bucket policy (repeatable).
    #[arg(long, value_name = "FILE")]
    resource_policy: Vec<PathBuf>,
    /// The principal's permissions boundary.
    #[arg(long, value_name = "FILE")]
    boundary: Vec<PathBuf>,
    /// A session policy of the principal's session (repeatable).
    #[arg(long, value_name = "FILE")]
    session_policy: Vec<PathBuf>,
    /// The action, such as `s3:GetObject`.
    #[arg(long, required_unless_present = "cases")]
    action: Option<String>,
    /// The resource ARN, or `*`.
    #[arg(long, required_unless_present = "cases")]
    resource: Option<String>,
    /// Who asks: a user ARN, a role-session ARN (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION),
    /// a root ARN, a service principal (pods.eks.amazonaws.com), or an OIDC provider ARN (a web
    /// identity). Default: a user named `simulated` in the resource's account.
    #[arg(long, value_name = "ARN")]
    principal: Option<String>,
    /// For a role session: the role's ARN with its path, when the role has one.
    #[arg(long, value_name = "ARN")]
    role_arn: Option<String>,
    /// The principal's unique id (AIDA... for a user, AROA... for a role).
    #[arg(long, value_name = "ID")]
    principal_id: Option<String>,
    /// The resource's account, for ARNs without one (such as S3 buckets). Default: the account in
    /// the resource ARN, else the principal's.
    #[arg(long, value_name = "ACCOUNT")]
    resource_account: Option<String>,
    /// A request-context key and value (repeatable; repeating a key makes a list). Keys such as
    /// aws:TagKeys are always lists. aws:CurrentTime and aws:EpochTime default to now.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// Print every statement considered for each case, passing or not.
    #[arg(long, short)]
    verbose: bool,
    /// How to print the results.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Identity,
    Trust,
    Resource,
    Boundary,
    Session,
}

impl From<KindArg> for PolicyKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Identity => Self::Identity,
            KindArg::Trust => Self::Trust,
            KindArg::Resource => Self::Resource,
            KindArg::Boundary => Self::Boundary,
            KindArg::Session => Self::Session,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

pub(crate) fn run(command: PolicyCommand) -> anyhow::Result<Status> {
    match command {
        PolicyCommand::Validate(args) => validate(&args),
        PolicyCommand::Simulate(args) if !args.cases.is_empty() => run_cases(&args),
        PolicyCommand::Simulate(args) => simulate(&args, &SystemClock),
    }
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    kind: &'static str,
    valid: bool,
    statements: usize,
    errors: Vec<ErrorReport>,
    findings: Vec<FindingReport>,
}

#[derive(Serialize)]
struct ErrorReport {
    message: String,
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    aws_code: &'static str,
    aws_message: String,
}

#[derive(Serialize)]
struct FindingReport {
    severity: &'static str,
    statement: usize,
    sid: Option<String>,
    line: usize,
    message: String,
}

fn validate(args: &ValidateArgs) -> anyhow::Result<Status> {
    let kind = PolicyKind::from(args.kind);
    let mut reports = Vec::new();
    for file in &args.files {
        let bytes = read(file)?;
        reports.push(validate_one(file, &bytes, kind));
    }
    let ok = reports
        .iter()
        .all(|r| r.valid && r.findings.iter().all(|f| f.severity != "error"));
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&reports)?)?,
        Output::Text => {
            for r in &reports {
                if r.valid {
                    writeln!(
                        out,
                        "{}: valid {} policy, {} statement(s)",
                        r.file, r.kind, r.statements
                    )?;
                }
                for e in &r.errors {
                    let at = e
                        .line
                        .map(|l| format!(":{l}:{}", e.column.unwrap_or(1)))
                        .unwrap_or_default();
                    writeln!(out, "{}{at}: error: {}", r.file, e.message)?;
                    writeln!(
                        out,
                        "    AWS would answer: {}: {}",
                        e.aws_code, e.aws_message
                    )?;
                }
                for f in &r.findings {
                    writeln!(out, "{}:{}: {}: {}", r.file, f.line, f.severity, f.message)?;
                }
            }
        }
    }
    Ok(if ok { Status::Success } else { Status::No })
}

fn validate_one(file: &Path, bytes: &[u8], kind: PolicyKind) -> FileReport {
    let name = file.display().to_string();
    let report = |valid, statements, errors, findings| FileReport {
        file: name.clone(),
        kind: kind.as_str(),
        valid,
        statements,
        errors,
        findings,
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        let offset = std::str::from_utf8(bytes)
            .err()
            .map_or(0, |e| e.valid_up_to());
        return report(
            false,
            0,
            vec![ErrorReport {
                message: format!("the file is not UTF-8 text (invalid byte at offset {offset})"),
                path: "$".into(),
                line: None,
                column: None,
                aws_code: "MalformedPolicyDocument",
                aws_message: "Syntax errors in policy.".into(),
            }],
            Vec::new(),
        );
    };
    match Policy::parse(text, kind) {
        Ok(policy) => {
            let findings = policy
                .lint()
                .into_iter()
                .map(|f| FindingReport {
                    severity: match f.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    },
                    statement: f.statement,
                    sid: f.sid,
                    line: f.line,
                    message: f.message,
                })
                .collect();
            report(true, policy.statements().len(), Vec::new(), findings)
        }
        Err(errors) => {
            let errors = errors
                .iter()
                .map(|e| ErrorReport {
                    message: e.to_string(),
                    path: e.path().to_owned(),
                    line: e.position().map(|p| p.line),
                    column: e.position().map(|p| p.column),
                    aws_code: e.aws_code(),
                    aws_message: e.aws_message(),
                })
                .collect();
            report(false, 0, errors, Vec::new())
        }
    }
}

#[derive(Serialize)]
struct CaseReport {
    file: String,
    name: String,
    line: usize,
    passed: bool,
    expected: &'static str,
    decision: DecisionReport,
}

#[derive(Serialize)]
struct DecisionReport {
    decision: &'static str,
    reason: String,
    missing: Option<&'static str>,
    statements: Vec<StatementReport>,
    not_applied: Vec<NearMissReport>,
    access_denied_message: Option<String>,
}

#[derive(Serialize)]
struct NearMissReport {
    kind: &'static str,
    policy: String,
    index: usize,
    sid: Option<String>,
    line: usize,
    why: String,
}

#[derive(Serialize)]
struct StatementReport {
    kind: &'static str,
    policy: String,
    index: usize,
    sid: Option<String>,
    effect: &'static str,
    names: Option<&'static str>,
    line: usize,
}

impl DecisionReport {
    fn new(explanation: &Explanation, message: Option<String>) -> Self {
        Self {
            decision: explanation.outcome.as_str(),
            reason: explanation.summary.clone(),
            missing: explanation.missing.map(PolicyKind::as_str),
            statements: explanation
                .statements
                .iter()
                .map(|s| StatementReport {
                    kind: s.kind.as_str(),
                    policy: s.policy.clone(),
                    index: s.index,
                    sid: s.sid.clone(),
                    effect: s.effect.as_str(),
                    names: s.grant.map(|g| match g {
                        podid_policy::Grant::Account => "account",
                        podid_policy::Grant::Role => "role",
                        podid_policy::Grant::Direct => "caller",
                        podid_policy::Grant::Everyone => "everyone",
                    }),
                    line: s.start.0,
                })
                .collect(),
            not_applied: explanation
                .near_misses
                .iter()
                .map(|m| NearMissReport {
                    kind: m.statement.kind.as_str(),
                    policy: m.statement.policy.clone(),
                    index: m.statement.index,
                    sid: m.statement.sid.clone(),
                    line: m.statement.start.0,
                    why: m.why.clone(),
                })
                .collect(),
            access_denied_message: message,
        }
    }
}

fn run_cases(args: &SimulateArgs) -> anyhow::Result<Status> {
    let mut malformed = false;
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut reports = Vec::new();
    let mut out = std::io::stdout().lock();
    for file in &args.cases {
        let bytes = read(file)?;
        let cases = match Case::load(&bytes) {
            Ok(cases) => cases,
            Err(e) => {
                malformed = true;
                eprintln!("{}: malformed case file: {e}", file.display());
                continue;
            }
        };
        for case in &cases {
            let result = case.run();
            if result.passed() {
                passed += 1;
            } else {
                failed += 1;
            }
            if args.output == Output::Text && (!result.passed() || args.verbose) {
                let verdict = if result.passed() { "PASS" } else { "FAIL" };
                writeln!(
                    out,
                    "{verdict} {} ({}:{}): expected {}, got {}",
                    result.name,
                    file.display(),
                    result.position.line,
                    result.expected.as_str(),
                    result.explanation.outcome.as_str()
                )?;
                for line in result.explanation.to_string().lines() {
                    writeln!(out, "    {line}")?;
                }
                if let Some(message) = &result.message {
                    writeln!(out, "    AWS message: {message}")?;
                }
            }
            if args.output == Output::Json {
                reports.push(CaseReport {
                    file: file.display().to_string(),
                    name: case.name().to_owned(),
                    line: result.position.line,
                    passed: result.passed(),
                    expected: result.expected.as_str(),
                    decision: DecisionReport::new(&result.explanation, result.message.clone()),
                });
            }
        }
    }
    match args.output {
        Output::Text => writeln!(out, "{passed} passed, {failed} failed")?,
        Output::Json => {
            let summary = serde_json::json!({"passed": passed, "failed": failed, "malformed_files": malformed, "cases": reports});
            writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
        }
    }
    Ok(if malformed {
        Status::Error
    } else if failed > 0 {
        Status::No
    } else {
        Status::Success
    })
}

/// Keys whose values are always lists.
const MULTIVALUED: [&str; 8] = [
    "aws:tagkeys",
    "aws:calledvia",
    "aws:principalorgpaths",
    "aws:principalservicenameslist",
    "aws:resourceorgpaths",
    "aws:sourceorgpaths",
    "aws:vpceorgpaths",
    "sts:transitivetagkeys",
];

fn simulate(args: &SimulateArgs, clock: &dyn Clock) -> anyhow::Result<Status> {
    let action = args
        .action
        .as_deref()
        .ok_or_else(|| anyhow!("--action is required"))?;
    let resource = args
        .resource
        .as_deref()
        .ok_or_else(|| anyhow!("--resource is required"))?;
    let mut set = PolicySet::new();
    let groups: [(&[PathBuf], PolicyKind); 6] = [
        (&args.policy, args.kind.into()),
        (&args.identity_policy, PolicyKind::Identity),
        (&args.trust_policy, PolicyKind::Trust),
        (&args.resource_policy, PolicyKind::Resource),
        (&args.boundary, PolicyKind::Boundary),
        (&args.session_policy, PolicyKind::Session),
    ];
    let mut any = false;
    for (files, kind) in groups {
        for file in files {
            any = true;
            let bytes = read(file)?;
            let text = std::str::from_utf8(&bytes)
                .with_context(|| format!("{}: not UTF-8 text", file.display()))?;
            let policy =
                Policy::parse_with(text, ParseOptions::simulation(kind)).map_err(|errors| {
                    let e = errors.first();
                    let at = e
                        .position()
                        .map(|p| format!(":{}:{}", p.line, p.column))
                        .unwrap_or_default();
                    anyhow!(
                        "{}{at}: invalid {} policy: {e}",
                        file.display(),
                        kind.as_str()
                    )
                })?;
            let named = NamedPolicy::new(file.display().to_string(), policy);
            set = set.with(kind, named);
        }
    }
    if !any {
        bail!(
            "give at least one policy: --policy, --identity-policy, --trust-policy, --resource-policy, --boundary or --session-policy"
        );
    }
    let resource_account: Option<AccountId> = match &args.resource_account {
        Some(a) => Some(a.parse().map_err(|e| anyhow!("--resource-account: {e}"))?),
        None => resource
            .parse::<Arn>()
            .ok()
            .and_then(|a| a.account().parse().ok()),
    };
    let principal = principal(args, resource_account)?;
    let context = context(&args.context, clock)?;
    let ownership = Ownership::of(&principal, resource_account);
    let request = Request::new(&principal, action, resource, &context).with_ownership(ownership);
    let decision: Decision = set.evaluate(&request);
    let explanation = decision.explain(&set, &request);
    let message = decision.access_denied_message(&request, true);
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            let report = DecisionReport::new(&explanation, message);
            writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        }
        Output::Text => {
            write!(out, "{explanation}")?;
            if let Some(message) = message {
                writeln!(out, "AWS message: {message}")?;
            }
        }
    }
    Ok(if decision.is_allowed() {
        Status::Success
    } else {
        Status::No
    })
}

fn principal(
    args: &SimulateArgs,
    resource_account: Option<AccountId>,
) -> anyhow::Result<Principal> {
    let id = args.principal_id.as_deref().unwrap_or_default();
    let Some(text) = args.principal.as_deref() else {
        let account = resource_account.map_or_else(|| "123456789012".to_owned(), |a| a.to_string());
        return Principal::user(&format!("arn:aws:iam::{account}:user/simulated"), id)
            .map_err(|e| anyhow!("{e}"));
    };
    let Ok(arn) = text.parse::<Arn>() else {
        if text.contains('.') && !text.contains(':') {
            return Ok(Principal::service(text));
        }
        bail!(
            "--principal `{text}` is neither an ARN nor a service principal such as `pods.eks.amazonaws.com`"
        );
    };
    let resource = arn.resource();
    let principal = match (arn.service(), resource) {
        ("iam", "root") => Principal::root(
            arn.account()
                .parse()
                .map_err(|e| anyhow!("--principal: {e}"))?,
        ),
        ("iam", r) if r.starts_with("user/") => {
            Principal::user(text, id).map_err(|e| anyhow!("--principal: {e}"))?
        }
        ("iam", r) if r.starts_with("oidc-provider/") || r.starts_with("saml-provider/") => {
            Principal::web_identity(text)
        }
        ("sts", r) if r.starts_with("assumed-role/") => {
            let role_name = r
                .strip_prefix("assumed-role/")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default();
            let role_arn = args.role_arn.clone().unwrap_or_else(|| {
                format!(
                    "arn:{}:iam::{}:role/{role_name}",
                    arn.partition(),
                    arn.account()
                )
            });
            Principal::assumed_role(text, &role_arn, id).map_err(|e| anyhow!("--principal: {e}"))?
        }
        ("sts", r) if r.starts_with("federated-user/") => {
            Principal::federated_user(text).map_err(|e| anyhow!("--principal: {e}"))?
        }
        ("iam", r) if r.starts_with("role/") => bail!(
            "--principal `{text}` is a role; a role acts through sessions: give the session ARN, arn:aws:sts::{}:assumed-role/{}/SESSION",
            arn.account(),
            r.rsplit('/').next().unwrap_or_default()
        ),
        _ => bail!(
            "--principal `{text}` names no kind of principal podid knows: use a user, role session, root, OIDC provider ARN or a service principal"
        ),
    };
    Ok(principal)
}

fn context(pairs: &[String], clock: &dyn Clock) -> anyhow::Result<Context> {
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            anyhow!("--context `{pair}`: write KEY=VALUE, such as aws:SourceIp=10.0.0.1")
        })?;
        if key.is_empty() {
            bail!("--context `{pair}`: the key is empty");
        }
        match values.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some((_, list)) => list.push(value.to_owned()),
            None => values.push((key.to_owned(), vec![value.to_owned()])),
        }
    }
    let mut context = Context::new();
    let now = clock.now();
    context.insert("aws:CurrentTime", now.to_iso8601());
    context.insert("aws:EpochTime", now.as_secs().to_string());
    for (key, list) in values {
        let multivalued = MULTIVALUED.contains(&key.to_ascii_lowercase().as_str());
        let value = match list.as_slice() {
            [one] if !multivalued => ContextValue::One(one.clone()),
            _ => ContextValue::Many(list),
        };
        context.insert(&key, value);
    }
    Ok(context)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    const MAX: u64 = 64 * 1024 * 1024;
    let metadata =
        std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if metadata.len() > MAX {
        bail!("`{}` is larger than 64 MiB", path.display());
    }
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}
