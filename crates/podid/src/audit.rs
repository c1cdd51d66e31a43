//! `podid audit`: the server's audit trail, filtered, paged and exported.

use std::io::Write as _;

use anyhow::Context as _;
use podid_types::Clock as _;
use serde_json::{Value, json};

use crate::Status;
use crate::aws_client::{ApiFailure, ClientArgs};
use crate::cluster::{Format, eks, finish};

/// The most records the server returns per page.
const PAGE: usize = 1000;

/// The audit trail: every call that changed something or issued credentials, and every refusal
/// of one
///
/// Each record says who (the caller's ARN, or a web identity's provider and subject), what (the
/// operation and its parameters, secrets hidden), when, from where (address, user agent), the
/// request id, the outcome (success, denied, failed) with the error, the statements that allowed
/// it, and for EKS Auth the namespace, service account, pod, association and roles. Records are
/// oldest first; your account's records only. Needs `podid:ReadAudit`.
///
/// Examples:
///   podid audit --start-time 1h                           # the last hour, as a table
///   podid audit --cluster dev --outcome denied             # refused pod credentials, and more
///   podid audit --principal role/ci --output json
///   podid audit --start-time 2026-12-01 --output jsonl > audit.jsonl   # export every record
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct AuditArgs {
    /// Records at or after this time: ISO 8601 (`2026-12-04T08:00:00Z`, `2026-12-04`), epoch
    /// seconds, or an age (`90m`, `24h`, `7d`: that long ago).
    #[arg(long, value_name = "TIME")]
    start_time: Option<String>,
    /// Records at or before this time, in the same forms.
    #[arg(long, value_name = "TIME")]
    end_time: Option<String>,
    /// Records whose caller's ARN contains this (`role/ci`, `user/alice`, an account id).
    #[arg(long, value_name = "TEXT")]
    principal: Option<String>,
    /// Records about this EKS cluster.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// Records with this outcome.
    #[arg(long, value_enum)]
    outcome: Option<AuditOutcome>,
    /// Records of this operation (`AssumeRoleForPodIdentity`, `CreateRole`, ...).
    #[arg(long, value_name = "NAME")]
    event_name: Option<String>,
    /// The most records to print (default 100; with `--output jsonl`, all of them). When more
    /// remain, a `NextToken` is printed (on standard error for the table and jsonl).
    #[arg(long, value_name = "N")]
    max_items: Option<usize>,
    /// Carry on from the `NextToken` an earlier run printed.
    #[arg(long, value_name = "TOKEN")]
    starting_token: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    /// Output format: `table`, `json`, `yaml`, or `jsonl` (one JSON record per line, for export
    /// to a log pipeline).
    #[arg(long, short, value_enum, default_value_t)]
    output: AuditFormat,
}

/// `--outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum AuditOutcome {
    /// The call did what was asked.
    Success,
    /// Authorization refused it.
    Denied,
    /// Any other error.
    Failed,
}

/// `--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
enum AuditFormat {
    /// A table for people.
    #[default]
    Table,
    /// JSON: `{"events": [...], "NextToken": ...}`.
    Json,
    /// YAML.
    Yaml,
    /// JSON lines: one record per line.
    Jsonl,
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<Status> {
    let now = podid_types::SystemClock.now().as_millis();
    let mut query = Vec::new();
    for (name, value) in [("startTime", &args.start_time), ("endTime", &args.end_time)] {
        if let Some(text) = value {
            let millis = time(text, now).with_context(|| {
                format!(
                    "--{}",
                    if name == "startTime" {
                        "start-time"
                    } else {
                        "end-time"
                    }
                )
            })?;
            query.push((name, millis.to_string()));
        }
    }
    for (name, value) in [
        ("principal", &args.principal),
        ("cluster", &args.cluster),
        ("eventName", &args.event_name),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(outcome) = args.outcome {
        query.push((
            "outcome",
            match outcome {
                AuditOutcome::Success => "success",
                AuditOutcome::Denied => "denied",
                AuditOutcome::Failed => "failed",
            }
            .to_owned(),
        ));
    }
    let max_items = args
        .max_items
        .unwrap_or(if args.output == AuditFormat::Jsonl {
            usize::MAX
        } else {
            100
        });
    let client = eks(&args.client)?;
    let mut token = args.starting_token.clone();
    let mut events = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut printed = 0usize;
    let next = loop {
        let mut page_query = query.clone();
        page_query.push((
            "maxResults",
            (max_items - printed - events.len())
                .clamp(1, PAGE)
                .to_string(),
        ));
        if let Some(token) = &token {
            page_query.push(("nextToken", token.clone()));
        }
        let text = page_query
            .iter()
            .map(|(k, v)| format!("{k}={}", podid_sigv4::uri_encoded(v)))
            .collect::<Vec<_>>()
            .join("&");
        let page = match client.json("GET", "/podid/audit/events", &text, None) {
            Ok(page) => page,
            Err(e) if e.downcast_ref::<ApiFailure>().is_some() => {
                return finish(Err(e), Format::Json);
            }
            Err(e) => return Err(e),
        };
        let records = page
            .get("events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if args.output == AuditFormat::Jsonl {
            // Streamed page by page: an export of the whole trail never sits in memory.
            for record in &records {
                writeln!(out, "{record}")?;
            }
            printed += records.len();
        } else {
            events.extend(records);
        }
        token = page
            .get("nextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if token.is_none() || printed + events.len() >= max_items {
            break token;
        }
    };
    drop(out);
    match args.output {
        AuditFormat::Jsonl | AuditFormat::Table => {
            if args.output == AuditFormat::Table {
                table(&events)?;
            }
            if let Some(next) = next {
                eprintln!("more records: carry on with --starting-token {next}");
            }
            Ok(Status::Success)
        }
        format => {
            let mut value = json!({"events": events});
            if let (Some(next), Some(map)) = (next, value.as_object_mut()) {
                map.insert("NextToken".into(), next.into());
            }
            finish(
                Ok(value),
                if format == AuditFormat::Yaml {
                    Format::Yaml
                } else {
                    Format::Json
                },
            )
        }
    }
}

/// Epoch milliseconds of `text`: a date, epoch seconds, or an age before `now`.
fn time(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Some(millis) = podid_policy::parse_date(text) {
        return Ok(millis);
    }
    match crate::listen::parse_duration(text) {
        Ok(age) => Ok(now - i64::try_from(age.as_millis()).unwrap_or(i64::MAX).min(now)),
        Err(_) => anyhow::bail!(
            "`{text}` is not a time: give an ISO 8601 date (`2026-12-04T08:00:00Z`), epoch seconds, or an age (`90m`, `24h`, `7d`)"
        ),
    }
}

fn table(events: &[Value]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<30} {:<52} {:<16} OUTCOME",
        "TIME", "EVENT", "PRINCIPAL", "CLUSTER"
    )?;
    for event in events {
        let text = |path: &[&str]| {
            let mut value = event;
            for key in path {
                value = value.get(key).unwrap_or(&Value::Null);
            }
            value.as_str().unwrap_or("-").to_owned()
        };
        let mut principal = text(&["userIdentity", "arn"]);
        if principal == "-" {
            principal = text(&["userIdentity", "principalId"]);
        }
        let mut outcome = text(&["outcome"]);
        if let Some(code) = event.get("errorCode").and_then(Value::as_str) {
            outcome = format!("{outcome}: {code}: {}", text(&["errorMessage"]));
        }
        writeln!(
            out,
            "{:<24} {:<30} {:<52} {:<16} {outcome}",
            text(&["eventTime"]),
            text(&["eventName"]),
            principal,
            text(&["cluster"]),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::time;

    #[test]
    fn times_are_dates_epoch_seconds_or_ages() {
        let now = 1_764_835_200_000;
        assert_eq!(
            time("2025-12-04T08:00:00Z", now).ok(),
            Some(1_764_835_200_000)
        );
        assert_eq!(time("1764835200", now).ok(), Some(1_764_835_200_000));
        assert_eq!(time("1h", now).ok(), Some(now - 3_600_000));
        assert_eq!(time("7d", now).ok(), Some(now - 7 * 86_400_000));
        let error = time("yesterday", now).unwrap_err().to_string();
        assert!(error.contains("`yesterday` is not a time"), "{error}");
    }
}
