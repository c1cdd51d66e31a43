//! The console's picture of the access graph: an SVG drawn on the server (no script, no
//! external request). Service accounts on the left, each role in the column of its shortest
//! path; an edge's reasons are its tooltip (`<title>`, on hover and on keyboard focus), and the
//! same reasons are listed in a table below the picture.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use podid_core::eks::AccessGraph;

use crate::console::esc;

const COLUMN: usize = 300;
const ROW: usize = 56;
const BOX_W: usize = 250;
const BOX_H: usize = 36;
const MARGIN: usize = 16;

/// The graph as an SVG.
pub(crate) fn svg(graph: &AccessGraph) -> String {
    if graph.nodes.is_empty() {
        return "<p>No service account of this scope reaches a role.</p>".into();
    }
    // Column of each node: 0 for sources, the shortest depth for roles.
    let mut column: BTreeMap<&str, usize> = BTreeMap::new();
    for node in &graph.nodes {
        if node.kind != "role" {
            column.insert(&node.id, 0);
        }
    }
    for reach in &graph.reach {
        let depth = usize::try_from(reach.depth).unwrap_or(usize::MAX);
        let entry = column.entry(&reach.role).or_insert(depth);
        *entry = (*entry).min(depth);
    }
    // Roles reached only as intermediate hops (an association role with a target role).
    for edge in &graph.edges {
        if !column.contains_key(edge.to.as_str()) {
            column.insert(&edge.to, 1);
        }
    }
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut place: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for node in &graph.nodes {
        let col = column.get(node.id.as_str()).copied().unwrap_or(0);
        let row = rows.entry(col).or_insert(0);
        place.insert(&node.id, (MARGIN + col * COLUMN, MARGIN + *row * ROW));
        *row += 1;
    }
    let width = MARGIN * 2 + (rows.keys().max().copied().unwrap_or(0)) * COLUMN + BOX_W;
    let height = MARGIN * 2 + rows.values().max().copied().unwrap_or(1) * ROW;
    let mut out = format!(
        "<figure class=\"graph\"><svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"access graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\"/></marker></defs>"
    );
    for edge in &graph.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) =
            (place.get(edge.from.as_str()), place.get(edge.to.as_str()))
        else {
            continue;
        };
        let reasons: Vec<String> = edge
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{}: {} of {} statement {}{} (line {})",
                    r.action,
                    r.policy,
                    r.holder,
                    r.statement,
                    r.sid
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default(),
                    r.line
                )
            })
            .chain(
                edge.conditions
                    .iter()
                    .map(|c| format!("needs {} = {}", c.key, c.value)),
            )
            .collect();
        let _ = write!(
            out,
            "<a href=\"#{id}\" class=\"edge {via}\"><title>{via} ({id})&#10;{reasons}</title><line x1=\"{a}\" y1=\"{b}\" x2=\"{c}\" y2=\"{d}\" marker-end=\"url(#arrow)\"{dash}/></a>",
            id = esc(&edge.id),
            via = edge.via,
            reasons = esc(&reasons.join("\n")),
            a = x1 + BOX_W,
            b = y1 + BOX_H / 2,
            c = x2,
            d = y2 + BOX_H / 2,
            dash = if edge.intermediate {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            },
        );
    }
    for node in &graph.nodes {
        let Some(&(x, y)) = place.get(node.id.as_str()) else {
            continue;
        };
        let label: String = node.label.chars().take(34).collect();
        let _ = write!(
            out,
            "<g class=\"node {kind}\"><title>{id}</title><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\"/><text x=\"{tx}\" y=\"{ty}\">{label}</text></g>",
            kind = node.kind,
            id = esc(&node.id),
            tx = x + 10,
            ty = y + BOX_H / 2 + 5,
            label = esc(&label),
        );
    }
    out.push_str("</svg><figcaption>Boxes on the left are service accounts (dashed: every service account a <code>sub</code> pattern admits); the others are roles. Point at an arrow, or move to it with the keyboard, for the statements that allow it.</figcaption></figure>");
    out
}

/// Every edge with its reasons, and the findings, as tables.
pub(crate) fn table(graph: &AccessGraph) -> String {
    let label = |id: &str| {
        graph
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(id.to_owned(), |n| n.label.clone())
    };
    let mut out = String::from(
        "<h2>Edges</h2><table><thead><tr><th>Edge</th><th>From</th><th>To</th><th>Via</th><th>Allowed by</th><th>Needs</th></tr></thead><tbody>",
    );
    for edge in &graph.edges {
        let reasons: Vec<String> = edge
            .reasons
            .iter()
            .map(|r| {
                format!(
                    "{} — {} statement {}{}, line {}",
                    esc(r.action),
                    esc(&r.policy),
                    r.statement,
                    r.sid
                        .as_deref()
                        .map(|s| format!(" (<code>{}</code>)", esc(s)))
                        .unwrap_or_default(),
                    r.line
                )
            })
            .collect();
        let needs: Vec<String> = edge
            .conditions
            .iter()
            .map(|c| {
                format!(
                    "<code>{}</code> = <code>{}</code>",
                    esc(&c.key),
                    esc(&c.value)
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr id=\"{id}\"><td>{id}</td><td>{from}</td><td>{to}</td><td>{via}</td><td>{reasons}</td><td>{needs}</td></tr>",
            id = esc(&edge.id),
            from = esc(&label(&edge.from)),
            to = esc(&edge.to),
            via = edge.via,
            reasons = reasons.join("<br>"),
            needs = needs.join("<br>"),
        );
    }
    out.push_str("</tbody></table>");
    if !graph.findings.is_empty() {
        out.push_str("<h2>Findings</h2><ul class=\"findings\">");
        for finding in &graph.findings {
            let _ = write!(
                out,
                "<li class=\"{sev}\"><strong>{sev}</strong> {kind}: {message}<br><em>Fix:</em> {fix}</li>",
                sev = finding.severity,
                kind = finding.kind,
                message = esc(&finding.message),
                fix = esc(&finding.fix),
            );
        }
        out.push_str("</ul>");
    }
    out
}
