//! `podid access`: who can reach which role, and why (the server's access graph, as a table,
//! JSON, YAML, Graphviz DOT, or SVG and PNG through `dot`).

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use serde_json::Value;

use crate::Status;
use crate::aws_client::{ApiFailure, ClientArgs};
use crate::cluster::{Format, eks, finish};

/// Who can reach which role, and why: the access graph
///
/// Forward (the default): for every cluster of your account (or one, with --cluster), every
/// role each service account's pods can obtain, and how:
///   - through its Pod Identity association (the role, then the target role);
///   - through IRSA: a role whose trust names the IAM OIDC provider of the cluster's issuer, in
///     any account podid hosts, with its `sub` and `aud` conditions evaluated (a wildcard or a
///     missing `sub` shows as a set of service accounts: "every service account of prod");
///   - onward through `sts:AssumeRole` (role chaining), with the session tags and external ids
///     of each hop, to --max-depth hops.
///
/// Reverse (--role ARN): every service account and chain, in every cluster podid hosts, that
/// reaches the role.
///
/// Each edge carries the statements that allow it (policy, Sid or index, line) and what must
/// hold (an external id, a `sub` pattern). Findings name what to fix: IRSA trust without a `sub`
/// condition, trust of an account root, a chain across accounts without an external id, an
/// association whose role refuses EKS Pod Identity, a target role the Pod Identity role may not
/// assume, an association whose role was deleted.
///
/// Every edge is decided by the server's own policy engine, by the code that issues the
/// credentials. Needs `podid:GetAccessGraph` on the cluster (forward) or the role (reverse).
/// The JSON schema is in docs/access-graph.md.
///
/// Examples:
///   podid access                                      # every cluster of your account
///   podid access --cluster prod --namespace payments
///   podid access --role arn:aws:iam::444455556666:role/reports
///   podid access --cluster prod --output json > graph.json
///   podid access --cluster prod --output svg > access.svg    # needs Graphviz's `dot`
///   podid access --fail-on high                       # exit 3 when a high finding exists (CI)
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AccessArgs {
    /// Only this cluster of your account (in --region).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Only this namespace's service accounts.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Only this service account (with --namespace).
    #[arg(long, value_name = "NAME", requires = "namespace")]
    service_account: Option<String>,
    /// Reverse: the paths that reach this role, from every cluster podid hosts.
    #[arg(long, value_name = "ARN", conflicts_with_all = ["cluster", "namespace"])]
    role: Option<String>,
    /// The most hops of a path, 1 to 8 (default 4). An association's target role is always
    /// shown: EKS Auth makes both hops in one call.
    #[arg(long, value_name = "N")]
    max_depth: Option<u32>,
    /// Exit with status 3 when a finding of this severity or worse exists.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<Severity>,
    #[command(flatten)]
    client: ClientArgs,
    /// Output format: `table`, `json`, `yaml`, `dot` (Graphviz), or `svg`/`png` (drawn by
    /// Graphviz's `dot`, which must be on PATH).
    #[arg(long, short, value_enum, default_value_t)]
    output: AccessFormat,
}

/// `--fail-on`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Severity {
    Low,
    Medium,
    High,
}

/// `--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum AccessFormat {
    /// Who reaches what, then the findings.
    #[default]
    Table,
    /// The graph (docs/access-graph.md).
    Json,
    /// The same, as YAML.
    Yaml,
    /// Graphviz DOT.
    Dot,
    /// SVG, drawn by `dot -Tsvg`.
    Svg,
    /// PNG, drawn by `dot -Tpng`.
    Png,
}

pub(crate) fn run(args: AccessArgs) -> anyhow::Result<Status> {
    let mut query = Vec::new();
    for (name, value) in [
        ("cluster", &args.cluster),
        ("namespace", &args.namespace),
        ("serviceAccount", &args.service_account),
        ("roleArn", &args.role),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", podid_sigv4::uri_encoded(value)));
        }
    }
    if let Some(depth) = args.max_depth {
        query.push(format!("maxDepth={depth}"));
    }
    let client = eks(&args.client)?;
    let graph = match client.json("GET", "/podid/access-graph", &query.join("&"), None) {
        Ok(graph) => graph,
        Err(e) if e.downcast_ref::<ApiFailure>().is_some() => return finish(Err(e), Format::Json),
        Err(e) => return Err(e),
    };
    let status = match args.output {
        AccessFormat::Json => finish(Ok(graph.clone()), Format::Json)?,
        AccessFormat::Yaml => finish(Ok(graph.clone()), Format::Yaml)?,
        AccessFormat::Table => {
            std::io::stdout()
                .lock()
                .write_all(table(&graph).as_bytes())?;
            Status::Success
        }
        AccessFormat::Dot => {
            std::io::stdout().lock().write_all(dot(&graph).as_bytes())?;
            Status::Success
        }
        AccessFormat::Svg | AccessFormat::Png => {
            let drawn = draw(&dot(&graph), args.output == AccessFormat::Svg)?;
            std::io::stdout().lock().write_all(&drawn)?;
            Status::Success
        }
    };
    if let Some(threshold) = args.fail_on {
        let worst = findings(&graph)
            .iter()
            .filter_map(|f| severity(text(f, "severity")))
            .max();
        if worst.is_some_and(|w| w >= threshold) {
            eprintln!(
                "findings of severity {} or worse: exit status 3 (--fail-on)",
                text_of(threshold)
            );
            return Ok(Status::Exit(3));
        }
    }
    Ok(status)
}

fn severity(text: &str) -> Option<Severity> {
    match text {
        "low" => Some(Severity::Low),
        "medium" => Some(Severity::Medium),
        "high" => Some(Severity::High),
        _ => None,
    }
}

fn text_of(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
    }
}

fn list<'a>(graph: &'a Value, name: &str) -> &'a [Value] {
    graph
        .get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn findings(graph: &Value) -> &[Value] {
    list(graph, "findings")
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or("-")
}

/// A node's label, by id.
fn label<'a>(graph: &'a Value, id: &'a str) -> &'a str {
    list(graph, "nodes")
        .iter()
        .find(|n| text(n, "id") == id)
        .map_or(id, |n| text(n, "label"))
}

/// One row per (service account, role): the path with each hop's kind and what it needs; then
/// the findings.
fn table(graph: &Value) -> String {
    let mut out = String::new();
    let edges = list(graph, "edges");
    let rows: Vec<(String, String, String)> = list(graph, "reach")
        .iter()
        .map(|row| {
            let path: Vec<String> = row
                .get("path")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|id| edges.iter().find(|e| text(e, "id") == id))
                .map(|e| {
                    let mut hop = text(e, "via").to_owned();
                    for condition in e
                        .get("conditions")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let _ = write!(
                            hop,
                            " [{}={}]",
                            text(condition, "key"),
                            text(condition, "value")
                        );
                    }
                    hop
                })
                .collect();
            (
                label(graph, text(row, "from")).to_owned(),
                text(row, "role").to_owned(),
                path.join(" → "),
            )
        })
        .collect();
    let width = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(15);
    let role_width = rows
        .iter()
        .map(|r| r.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:<role_width$}  PATH",
        "SERVICE ACCOUNT", "ROLE"
    );
    for (from, role, path) in &rows {
        let _ = writeln!(out, "{from:<width$}  {role:<role_width$}  {path}");
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no service account reaches a role)");
    }
    let findings = findings(graph);
    if !findings.is_empty() {
        let _ = writeln!(out, "\nFINDINGS");
        for finding in findings {
            let _ = writeln!(
                out,
                "{:<6}  {}: {}\n        fix: {}",
                text(finding, "severity"),
                text(finding, "kind"),
                text(finding, "message"),
                text(finding, "fix")
            );
        }
    }
    if graph.get("truncated").and_then(Value::as_bool) == Some(true) {
        let _ = writeln!(
            out,
            "\nthe graph is cut short at {} hops: raise --max-depth to see further",
            graph
                .get("maxDepth")
                .and_then(Value::as_u64)
                .unwrap_or_default()
        );
    }
    out
}

/// A DOT string of `text`, its lines joined by DOT's `\n`.
fn quote(text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| line.replace('\\', "\\\\").replace('"', "\\\""))
        .collect();
    format!("\"{}\"", lines.join("\\n"))
}

/// Graphviz DOT: service accounts as boxes (sets of them dashed), roles as ellipses grouped by
/// account, edges labelled with their kind and conditions; each edge's reasons as its tooltip.
fn dot(graph: &Value) -> String {
    let mut out = String::from(
        "digraph access {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let nodes = list(graph, "nodes");
    let mut accounts: Vec<&str> = nodes
        .iter()
        .filter(|n| text(n, "kind") == "role")
        .map(|n| text(n, "account"))
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    for node in nodes.iter().filter(|n| text(n, "kind") != "role") {
        let style = if text(node, "kind") == "serviceAccounts" {
            "shape=box, style=dashed"
        } else {
            "shape=box"
        };
        let _ = writeln!(
            out,
            "  {} [label={}, {style}];",
            quote(text(node, "id")),
            quote(text(node, "label"))
        );
    }
    for account in accounts {
        let _ = writeln!(
            out,
            "  subgraph {} {{\n    label={};",
            quote(&format!("cluster_{account}")),
            quote(&format!("account {account}"))
        );
        for node in nodes
            .iter()
            .filter(|n| text(n, "kind") == "role" && text(n, "account") == account)
        {
            let _ = writeln!(
                out,
                "    {} [label={}, tooltip={}];",
                quote(text(node, "id")),
                quote(text(node, "label")),
                quote(text(node, "id"))
            );
        }
        out.push_str("  }\n");
    }
    for edge in list(graph, "edges") {
        let mut label = text(edge, "via").to_owned();
        for condition in edge
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = write!(
                label,
                "\n{} = {}",
                text(condition, "key"),
                text(condition, "value")
            );
        }
        let reasons: Vec<String> = edge
            .get("reasons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{}: {} of {} statement {}{} (line {})",
                    text(r, "action"),
                    text(r, "policy"),
                    text(r, "holder"),
                    r.get("statement")
                        .and_then(Value::as_u64)
                        .unwrap_or_default(),
                    r.get("sid")
                        .and_then(Value::as_str)
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    r.get("line").and_then(Value::as_u64).unwrap_or_default()
                )
            })
            .collect();
        let style = if edge.get("intermediate").and_then(Value::as_bool) == Some(true) {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}, tooltip={}{style}];",
            quote(text(edge, "from")),
            quote(text(edge, "to")),
            quote(&label),
            quote(&reasons.join("\n"))
        );
    }
    out.push_str("}\n");
    out
}

/// The picture `dot` draws of `source`.
fn draw(source: &str, svg: bool) -> anyhow::Result<Vec<u8>> {
    let format = if svg { "-Tsvg" } else { "-Tpng" };
    let mut child = std::process::Command::new("dot")
        .arg(format)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("`dot` could not be started: install Graphviz (`apt-get install graphviz`, `brew install graphviz`), or print `--output dot` and draw it elsewhere")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(source.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "`dot {format}` failed ({}); `--output dot` prints what it was given",
        output.status
    );
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::{dot, table};

    fn graph() -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 1, "maxDepth": 4, "truncated": false,
            "nodes": [
                {"id": "serviceaccount:c/ns/app", "kind": "serviceAccount", "label": "prod/ns/app"},
                {"id": "arn:aws:iam::111122223333:role/a", "kind": "role", "label": "a", "account": "111122223333"},
                {"id": "arn:aws:iam::444455556666:role/b", "kind": "role", "label": "b", "account": "444455556666"}
            ],
            "edges": [
                {"id": "e1", "from": "serviceaccount:c/ns/app", "to": "arn:aws:iam::111122223333:role/a", "via": "podIdentity", "intermediate": false,
                 "reasons": [{"action": "sts:AssumeRole", "policy": "role trust policy", "holder": "arn:aws:iam::111122223333:role/a", "statement": 0, "sid": "Pods", "line": 1}], "conditions": []},
                {"id": "e2", "from": "arn:aws:iam::111122223333:role/a", "to": "arn:aws:iam::444455556666:role/b", "via": "assumeRole", "intermediate": false,
                 "reasons": [], "conditions": [{"key": "sts:ExternalId", "value": "x\"y"}]}
            ],
            "reach": [
                {"from": "serviceaccount:c/ns/app", "role": "arn:aws:iam::111122223333:role/a", "depth": 1, "path": ["e1"]},
                {"from": "serviceaccount:c/ns/app", "role": "arn:aws:iam::444455556666:role/b", "depth": 2, "path": ["e1", "e2"]}
            ],
            "findings": [{"severity": "medium", "kind": "TrustOfAccountRoot", "subject": "b", "message": "m", "fix": "f"}]
        })
    }

    #[test]
    fn the_table_has_a_row_per_role_reached_then_the_findings() {
        let text = table(&graph());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE ACCOUNT"), "{text}");
        assert!(
            lines[2].contains("prod/ns/app") && lines[2].contains("role/b"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("podIdentity → assumeRole [sts:ExternalId=x\"y]"),
            "{text}"
        );
        assert!(
            text.contains("medium  TrustOfAccountRoot: m\n        fix: f"),
            "{text}"
        );
    }

    #[test]
    fn dot_quotes_what_it_is_given_and_groups_roles_by_account() {
        let text = dot(&graph());
        assert!(text.starts_with("digraph access {"), "{text}");
        assert!(text.contains("subgraph \"cluster_444455556666\""), "{text}");
        assert!(
            text.contains("label=\"assumeRole\\nsts:ExternalId = x\\\"y\""),
            "{text}"
        );
        assert!(text.contains("tooltip=\"sts:AssumeRole: role trust policy of arn:aws:iam::111122223333:role/a statement 0 (Pods) (line 1)\""), "{text}");
        assert!(text.trim_end().ends_with('}'));
    }
}
