//! The web console (`/console/`): server-rendered HTML over the same domain operations as the
//! APIs, as the signed-in IAM user, authorized by the policy engine with the same AccessDenied
//! texts. No script, no external request: the stylesheet is embedded in the binary.
//!
//! Sessions are the core's (`Core::console_sign_in`): an HttpOnly, `SameSite=Strict` cookie
//! scoped to `/console`. Every change is a POST that must carry the session's form token (CSRF)
//! and, when the browser sends one, an `Origin` of this server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use podid_core::eks::{
    AccessQuery, CreateAssociation, ListAssociations, UpdateAssociation, association_role_fit,
};
use podid_core::{AuditQuery, Caller, Error, OpenedConsole, PageRequest, csrf_matches};

use crate::AppState;

/// The cookie holding the session token.
const COOKIE: &str = "podid_console";

/// The largest form accepted.
const MAX_FORM: usize = 64 * 1024;

/// The region the console shows when none is chosen.
const DEFAULT_REGION: &str = "us-east-1";

/// Associations per page, as the console of EKS pages them.
const PAGE_SIZE: u32 = 10;

const STYLE: &str = include_str!("console.css");

/// Every request under `/console`.
pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form = if parts.method == Method::POST {
        match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(bytes) => parse_form(&bytes),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"),
        }
    } else {
        BTreeMap::new()
    };
    let query = parts
        .uri
        .query()
        .map(|q| parse_form(q.as_bytes()))
        .unwrap_or_default();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(2).collect();
    let secure = parts.extensions.get::<crate::SecureTransport>().is_some();
    let ctx = Ctx {
        state: &state,
        query: &query,
        form: &form,
        secure,
    };
    match (parts.method.clone(), segments.as_slice()) {
        (Method::GET, ["console.css"]) => Response::builder()
            .header(header::CONTENT_TYPE, "text/css; charset=utf-8")
            .header(header::CACHE_CONTROL, "max-age=3600")
            .body(Body::from(STYLE))
            .unwrap_or_default(),
        (Method::GET, ["sign-in"]) => page(StatusCode::OK, "Sign in", None, &sign_in_form(None)),
        (Method::POST, ["sign-in"]) => {
            if !same_origin(&parts.headers) {
                return cross_site();
            }
            ctx.sign_in().await
        }
        (method, rest) => {
            let token = cookie(&parts.headers);
            let session = match &token {
                Some(token) => state.core.console_session(token).await.ok().flatten(),
                None => None,
            };
            let Some(session) = session else {
                return if method == Method::GET {
                    redirect("/console/sign-in", None)
                } else {
                    page(
                        StatusCode::FORBIDDEN,
                        "Signed out",
                        None,
                        "<p class=\"error\">Your session has ended. <a href=\"/console/sign-in\">Sign in</a> again.</p>",
                    )
                };
            };
            if method == Method::POST
                && (!same_origin(&parts.headers)
                    || !form
                        .get("csrf")
                        .is_some_and(|given| csrf_matches(&session.csrf, given)))
            {
                return cross_site();
            }
            let user = User {
                session: &session,
                token: token.unwrap_or_default(),
            };
            ctx.route(&user, &method, rest).await
        }
    }
}

struct Ctx<'a> {
    state: &'a AppState,
    query: &'a BTreeMap<String, String>,
    form: &'a BTreeMap<String, String>,
    secure: bool,
}

struct User<'a> {
    session: &'a OpenedConsole,
    token: String,
}

impl User<'_> {
    fn caller(&self) -> &Caller {
        &self.session.caller
    }

    /// The hidden field every form carries.
    fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            esc(self.session.csrf.expose())
        )
    }
}

impl Ctx<'_> {
    /// A form field, trimmed (empty when absent).
    fn field(&self, name: &str) -> String {
        self.form
            .get(name)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    }

    fn region(&self) -> String {
        self.query
            .get("region")
            .or_else(|| self.form.get("region"))
            .filter(|r| {
                !r.is_empty()
                    && r.len() <= 32
                    && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .cloned()
            .unwrap_or_else(|| DEFAULT_REGION.into())
    }

    async fn sign_in(&self) -> Response {
        let key = self
            .form
            .get("accessKeyId")
            .map(|s| s.trim())
            .unwrap_or_default();
        let secret = self
            .form
            .get("secretAccessKey")
            .map(String::as_str)
            .unwrap_or_default();
        match self.state.core.console_sign_in(key, secret).await {
            Ok(session) => {
                let cookie = format!(
                    "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
                    session.token.expose(),
                    podid_core::CONSOLE_ABSOLUTE_MS / 1000,
                    if self.secure { "; Secure" } else { "" }
                );
                tracing::info!(user = %session.caller.arn(), "console sign-in");
                redirect("/console/clusters", Some(cookie))
            }
            Err(e) => page(
                StatusCode::FORBIDDEN,
                "Sign in",
                None,
                &sign_in_form(Some(&message(&e))),
            ),
        }
    }

    async fn route(&self, user: &User<'_>, method: &Method, rest: &[&str]) -> Response {
        let result = match (method, rest) {
            (&Method::GET, [] | [""]) => return redirect("/console/clusters", None),
            (&Method::GET, ["clusters"]) => self.clusters(user).await,
            (&Method::GET, ["clusters", name]) => self.access_tab(user, name).await,
            (&Method::GET, ["clusters", name, "associations", "new"]) => {
                self.association_form(user, name, None, None).await
            }
            (&Method::POST, ["clusters", name, "associations"]) => {
                self.create_association(user, name).await
            }
            (&Method::GET, ["clusters", name, "associations", id]) => {
                self.association(user, name, id).await
            }
            (&Method::GET, ["clusters", name, "associations", id, "edit"]) => {
                match self.describe(user, name, id).await {
                    Ok(record) => self.association_form(user, name, Some(&record), None).await,
                    Err(e) => Err(e),
                }
            }
            (&Method::POST, ["clusters", name, "associations", id, "edit"]) => {
                self.update_association(user, name, id).await
            }
            (&Method::GET, ["clusters", name, "associations", id, "delete"]) => {
                self.confirm_delete(user, name, id).await
            }
            (&Method::POST, ["clusters", name, "associations", id, "delete"]) => {
                self.delete_association(user, name, id).await
            }
            (&Method::GET, ["access"]) => self.access_graph(user).await,
            (&Method::GET, ["audit"]) => self.audit(user).await,
            (&Method::POST, ["sign-out"]) => {
                let _ = self.state.core.console_sign_out(&user.token).await;
                let expired = format!(
                    "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{}",
                    if self.secure { "; Secure" } else { "" }
                );
                return redirect("/console/sign-in", Some(expired));
            }
            _ => {
                return page(
                    StatusCode::NOT_FOUND,
                    "Not found",
                    Some(user),
                    "<p class=\"error\">There is no such page. <a href=\"/console/clusters\">Clusters</a></p>",
                );
            }
        };
        match result {
            Ok(response) => response,
            Err(e) => page(
                status_of(&e),
                "Not allowed",
                Some(user),
                &format!(
                    "<p class=\"error\" role=\"alert\">{}</p>",
                    esc(&message(&e))
                ),
            ),
        }
    }

    async fn clusters(&self, user: &User<'_>) -> Result<Response, Error> {
        let region = self.region();
        let eks = self.state.core.eks();
        let names = eks
            .list_clusters(user.caller(), &region, Some(100), None)
            .await?;
        let mut rows = String::new();
        for name in &names.items {
            let cluster = eks.describe_cluster(user.caller(), &region, name).await?;
            let count = match eks
                .list_associations(
                    user.caller(),
                    &region,
                    name,
                    &ListAssociations {
                        max_results: Some(100),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(page) if page.next_token.is_some() => format!("{}+", page.items.len()),
                Ok(page) => page.items.len().to_string(),
                Err(_) => "—".into(),
            };
            let _ = write!(
                rows,
                "<tr><td><a href=\"/console/clusters/{n}?region={r}\">{n}</a></td><td><code>{i}</code></td><td>Active</td><td>{count}</td></tr>",
                n = esc(name),
                r = esc(&region),
                i = esc(&cluster.issuer)
            );
        }
        if names.items.is_empty() {
            rows.push_str("<tr><td colspan=\"4\">No clusters in this region.</td></tr>");
        }
        Ok(page(
            StatusCode::OK,
            "Clusters",
            Some(user),
            &format!(
                "<form class=\"inline\" method=\"get\"><label>Region <input name=\"region\" value=\"{r}\" size=\"12\"></label> <button>Show</button></form>\
                 <table><caption>Clusters in {r}</caption><thead><tr><th>Name</th><th>OpenID Connect issuer</th><th>Status</th><th>Pod Identity associations</th></tr></thead><tbody>{rows}</tbody></table>",
                r = esc(&region)
            ),
        ))
    }

    async fn access_tab(&self, user: &User<'_>, name: &str) -> Result<Response, Error> {
        let region = self.region();
        let eks = self.state.core.eks();
        let cluster = eks.describe_cluster(user.caller(), &region, name).await?;
        let namespace = self
            .query
            .get("namespace")
            .filter(|s| !s.is_empty())
            .cloned();
        let service_account = self
            .query
            .get("serviceAccount")
            .filter(|s| !s.is_empty())
            .cloned();
        let page_of = eks
            .list_associations(
                user.caller(),
                &region,
                name,
                &ListAssociations {
                    namespace: namespace.clone(),
                    service_account: service_account.clone(),
                    max_results: Some(PAGE_SIZE),
                    next_token: self.query.get("nextToken").cloned(),
                },
            )
            .await?;
        let mut rows = String::new();
        for a in &page_of.items {
            let _ = write!(
                rows,
                "<tr><td>{ns}</td><td>{sa}</td><td><a href=\"/console/clusters/{c}/associations/{id}?region={r}\">{id}</a></td></tr>",
                ns = esc(&a.namespace),
                sa = esc(&a.service_account),
                c = esc(name),
                id = esc(&a.id),
                r = esc(&region)
            );
        }
        if page_of.items.is_empty() {
            rows.push_str("<tr><td colspan=\"3\">No Pod Identity associations.</td></tr>");
        }
        let next = page_of
            .next_token
            .as_deref()
            .map(|token| {
                format!(
                    "<a class=\"button\" href=\"/console/clusters/{c}?region={r}&amp;namespace={ns}&amp;serviceAccount={sa}&amp;nextToken={t}\">Next page</a>",
                    c = esc(name),
                    r = esc(&region),
                    ns = url(namespace.as_deref().unwrap_or_default()),
                    sa = url(service_account.as_deref().unwrap_or_default()),
                    t = url(token)
                )
            })
            .unwrap_or_default();
        Ok(page(
            StatusCode::OK,
            &format!("{} · Access", cluster.name),
            Some(user),
            &format!(
                "<p class=\"crumbs\"><a href=\"/console/clusters?region={r}\">Clusters</a> › {c}</p>\
                 <nav class=\"tabs\"><span aria-current=\"page\">Access</span> <a href=\"/console/access?cluster={c}&amp;region={r}\">Access graph</a> <a href=\"/console/audit?cluster={c}&amp;region={r}\">Pod credentials issued</a></nav>\
                 <h2>Pod Identity associations</h2>\
                 <form class=\"inline\" method=\"get\"><input type=\"hidden\" name=\"region\" value=\"{r}\"><label>Namespace <input name=\"namespace\" value=\"{ns}\"></label> <label>Service account <input name=\"serviceAccount\" value=\"{sa}\"></label> <button>Filter</button></form>\
                 <p><a class=\"button primary\" href=\"/console/clusters/{c}/associations/new?region={r}\">Create Pod Identity association</a></p>\
                 <table><thead><tr><th>Namespace</th><th>Service account</th><th>Association ID</th></tr></thead><tbody>{rows}</tbody></table>{next}",
                r = esc(&region),
                c = esc(name),
                ns = esc(namespace.as_deref().unwrap_or_default()),
                sa = esc(service_account.as_deref().unwrap_or_default()),
            ),
        ))
    }

    async fn describe(
        &self,
        user: &User<'_>,
        cluster: &str,
        id: &str,
    ) -> Result<podid_core::eks::AssociationRecord, Error> {
        self.state
            .core
            .eks()
            .describe_association(user.caller(), &self.region(), cluster, id)
            .await
    }

    async fn association(
        &self,
        user: &User<'_>,
        cluster: &str,
        id: &str,
    ) -> Result<Response, Error> {
        let a = self.describe(user, cluster, id).await?;
        let region = self.region();
        let row =
            |k: &str, v: &str| format!("<tr><th scope=\"row\">{k}</th><td>{}</td></tr>", esc(v));
        let tags: Vec<String> = a.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let body = format!(
            "<p class=\"crumbs\"><a href=\"/console/clusters?region={r}\">Clusters</a> › <a href=\"/console/clusters/{c}?region={r}\">{c}</a> › {id}</p>\
             <table class=\"details\">{}{}{}{}{}{}{}{}{}</table>\
             <p><a class=\"button\" href=\"/console/clusters/{c}/associations/{id}/edit?region={r}\">Edit</a> <a class=\"button danger\" href=\"/console/clusters/{c}/associations/{id}/delete?region={r}\">Delete</a></p>",
            row("Association ID", &a.id),
            row("Association ARN", &a.arn),
            row("Namespace", &a.namespace),
            row("Service account", &a.service_account),
            row("IAM role", &a.role_arn),
            row(
                "Target IAM role",
                a.target_role_arn.as_deref().unwrap_or("—")
            ),
            row("External ID", a.external_id.as_deref().unwrap_or("—")),
            row(
                "Session tags",
                if a.disable_session_tags {
                    "disabled"
                } else {
                    "enabled"
                }
            ),
            row("Tags", &tags.join(", ")),
            r = esc(&region),
            c = esc(cluster),
            id = esc(&a.id)
        );
        Ok(page(
            StatusCode::OK,
            "Pod Identity association",
            Some(user),
            &body,
        ))
    }

    /// The create or edit form; `error` is shown above it, EKS's text.
    async fn association_form(
        &self,
        user: &User<'_>,
        cluster: &str,
        existing: Option<&podid_core::eks::AssociationRecord>,
        error: Option<&str>,
    ) -> Result<Response, Error> {
        let region = self.region();
        let roles = self
            .state
            .core
            .iam()
            .list_roles(
                user.caller(),
                None,
                &PageRequest {
                    max_items: Some(1000),
                    ..Default::default()
                },
            )
            .await?;
        let chosen = self
            .form
            .get("roleArn")
            .cloned()
            .or_else(|| existing.map(|a| a.role_arn.clone()))
            .unwrap_or_default();
        let mut options = String::from("<option value=\"\">Choose a role</option>");
        let mut missing = String::new();
        for role in &roles.items {
            match association_role_fit(&role.trust_policy) {
                Ok(()) => {
                    let _ = write!(
                        options,
                        "<option value=\"{a}\"{s}>{n}</option>",
                        a = esc(&role.arn),
                        n = esc(&role.name),
                        s = if role.arn == chosen { " selected" } else { "" }
                    );
                }
                Err(why) => {
                    let _ = write!(
                        missing,
                        "<li><code>{}</code>: {}</li>",
                        esc(&role.name),
                        code_spans(why)
                    );
                }
            }
        }
        let field = |name: &str| -> String { self.form.get(name).cloned().unwrap_or_default() };
        let (action, title, fixed) = match existing {
            Some(a) => (
                format!(
                    "/console/clusters/{}/associations/{}/edit",
                    esc(cluster),
                    esc(&a.id)
                ),
                "Edit Pod Identity association",
                format!(
                    "<p>Namespace <strong>{}</strong>, service account <strong>{}</strong> (they cannot change).</p>",
                    esc(&a.namespace),
                    esc(&a.service_account)
                ),
            ),
            None => (
                format!("/console/clusters/{}/associations", esc(cluster)),
                "Create Pod Identity association",
                format!(
                    "<label>Kubernetes namespace <input name=\"namespace\" required value=\"{}\"></label>\
                     <label>Kubernetes service account <input name=\"serviceAccount\" required value=\"{}\"></label>",
                    esc(&field("namespace")),
                    esc(&field("serviceAccount"))
                ),
            ),
        };
        let target = self
            .form
            .get("targetRoleArn")
            .cloned()
            .or_else(|| existing.and_then(|a| a.target_role_arn.clone()))
            .unwrap_or_default();
        let tags_off = self.form.contains_key("disableSessionTags")
            || existing.is_some_and(|a| a.disable_session_tags);
        let external = existing
            .and_then(|a| a.external_id.as_deref())
            .map(|id| {
                format!(
                    "<p>External ID (EKS passes it to the target role): <code>{}</code></p>",
                    esc(id)
                )
            })
            .unwrap_or_default();
        let tags = if existing.is_none() {
            format!(
                "<label>Tags (key=value, one per line) <textarea name=\"tags\" rows=\"3\">{}</textarea></label>",
                esc(&field("tags"))
            )
        } else {
            String::new()
        };
        let error = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
            .unwrap_or_default();
        let body = format!(
            "<p class=\"crumbs\"><a href=\"/console/clusters?region={r}\">Clusters</a> › <a href=\"/console/clusters/{c}?region={r}\">{c}</a></p>{error}\
             <form method=\"post\" action=\"{action}?region={r}\" class=\"stack\">{csrf}{fixed}\
             <label>IAM role <select name=\"roleArn\" required>{options}</select></label>\
             <details><summary>Why is a role missing from this list?</summary><p>The list holds the roles of this account whose trust policy lets <code>pods.eks.amazonaws.com</code> assume them and tag the session, as EKS requires.</p><ul>{missing}</ul></details>\
             <label>Target IAM role (optional, may be in another account) <input name=\"targetRoleArn\" value=\"{target}\" placeholder=\"arn:aws:iam::ACCOUNT:role/NAME\"></label>\
             {external}<label class=\"check\"><input type=\"checkbox\" name=\"disableSessionTags\"{tags_off}> Disable session tags</label>{tags}\
             <p><button class=\"primary\">{verb}</button> <a href=\"/console/clusters/{c}?region={r}\">Cancel</a></p></form>",
            r = esc(&region),
            c = esc(cluster),
            csrf = user.csrf_field(),
            target = esc(&target),
            tags_off = if tags_off { " checked" } else { "" },
            verb = if existing.is_some() {
                "Save changes"
            } else {
                "Create"
            },
        );
        Ok(page(
            if error.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            },
            title,
            Some(user),
            &body,
        ))
    }

    async fn create_association(&self, user: &User<'_>, cluster: &str) -> Result<Response, Error> {
        let mut tags = BTreeMap::new();
        for line in self
            .form
            .get("tags")
            .map(String::as_str)
            .unwrap_or_default()
            .lines()
        {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            tags.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        let input = CreateAssociation {
            namespace: self.field("namespace"),
            service_account: self.field("serviceAccount"),
            role_arn: self.field("roleArn"),
            target_role_arn: Some(self.field("targetRoleArn")).filter(|t| !t.is_empty()),
            disable_session_tags: self.form.contains_key("disableSessionTags"),
            tags,
            ..Default::default()
        };
        let region = self.region();
        match self
            .state
            .core
            .eks()
            .create_association(user.caller(), &region, cluster, input)
            .await
        {
            Ok(a) => Ok(association_page(cluster, &a.id, &region)),
            Err(e)
                if status_of(&e) == StatusCode::BAD_REQUEST
                    || matches!(e, Error::ResourceInUse(_)) =>
            {
                self.association_form(user, cluster, None, Some(&message(&e)))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    async fn update_association(
        &self,
        user: &User<'_>,
        cluster: &str,
        id: &str,
    ) -> Result<Response, Error> {
        let existing = self.describe(user, cluster, id).await?;
        let input = UpdateAssociation {
            role_arn: Some(self.field("roleArn")).filter(|r| !r.is_empty()),
            target_role_arn: Some(self.field("targetRoleArn")),
            disable_session_tags: Some(self.form.contains_key("disableSessionTags")),
            ..Default::default()
        };
        let region = self.region();
        match self
            .state
            .core
            .eks()
            .update_association(user.caller(), &region, cluster, id, input)
            .await
        {
            Ok(_) => Ok(association_page(cluster, id, &region)),
            Err(e) if status_of(&e) == StatusCode::BAD_REQUEST => {
                self.association_form(user, cluster, Some(&existing), Some(&message(&e)))
                    .await
            }
            Err(e) => Err(e),
        }
    }

    async fn confirm_delete(
        &self,
        user: &User<'_>,
        cluster: &str,
        id: &str,
    ) -> Result<Response, Error> {
        let a = self.describe(user, cluster, id).await?;
        let region = self.region();
        Ok(page(
            StatusCode::OK,
            "Delete Pod Identity association",
            Some(user),
            &format!(
                "<p>Delete the association of <strong>{ns}/{sa}</strong> with <code>{role}</code>? Pods of this service account get no new credentials once it is gone; those issued last until they expire.</p>\
                 <form method=\"post\" action=\"/console/clusters/{c}/associations/{id}/delete?region={r}\">{csrf}<button class=\"danger\">Delete</button> <a href=\"/console/clusters/{c}/associations/{id}?region={r}\">Cancel</a></form>",
                ns = esc(&a.namespace),
                sa = esc(&a.service_account),
                role = esc(&a.role_arn),
                c = esc(cluster),
                id = esc(id),
                r = esc(&region),
                csrf = user.csrf_field()
            ),
        ))
    }

    async fn delete_association(
        &self,
        user: &User<'_>,
        cluster: &str,
        id: &str,
    ) -> Result<Response, Error> {
        let region = self.region();
        self.state
            .core
            .eks()
            .delete_association(user.caller(), &region, cluster, id)
            .await?;
        Ok(redirect(
            &format!("/console/clusters/{}?region={}", url(cluster), url(&region)),
            None,
        ))
    }

    async fn access_graph(&self, user: &User<'_>) -> Result<Response, Error> {
        let region = self.region();
        let cluster = self.query.get("cluster").filter(|c| !c.is_empty()).cloned();
        let graph = self
            .state
            .core
            .eks()
            .access_graph(
                user.caller(),
                &AccessQuery {
                    region: region.clone(),
                    cluster: cluster.clone(),
                    ..Default::default()
                },
            )
            .await?;
        let body = format!(
            "<p class=\"crumbs\"><a href=\"/console/clusters?region={r}\">Clusters</a> › access graph{c}</p>{svg}{table}",
            r = esc(&region),
            c = cluster
                .as_deref()
                .map(|c| format!(" of {}", esc(c)))
                .unwrap_or_default(),
            svg = crate::console_graph::svg(&graph),
            table = crate::console_graph::table(&graph),
        );
        Ok(page(StatusCode::OK, "Access graph", Some(user), &body))
    }

    async fn audit(&self, user: &User<'_>) -> Result<Response, Error> {
        let region = self.region();
        let cluster = self.query.get("cluster").filter(|c| !c.is_empty()).cloned();
        let outcome = self
            .query
            .get("outcome")
            .and_then(|o| podid_core::Outcome::parse(o));
        let page_of = self
            .state
            .core
            .audit()
            .lookup(
                user.caller(),
                &AuditQuery {
                    cluster: cluster.clone(),
                    event_name: Some("AssumeRoleForPodIdentity".into()),
                    outcome,
                    max_results: 1000,
                    ..Default::default()
                },
            )
            .await?;
        let mut rows = String::new();
        for record in page_of.records.iter().rev().take(100) {
            let value = serde_json::to_value(record).unwrap_or_default();
            let get = |path: &[&str]| {
                let mut v = &value;
                for key in path {
                    v = v.get(key).unwrap_or(&serde_json::Value::Null);
                }
                match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "—".into(),
                    other => other.to_string(),
                }
            };
            let _ = write!(
                rows,
                "<tr><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
                esc(&get(&["eventTime"])),
                esc(&get(&["cluster"])),
                esc(&get(&["additionalEventData", "podIdentity", "namespace"])),
                esc(&get(&[
                    "additionalEventData",
                    "podIdentity",
                    "serviceAccount"
                ])),
                esc(&get(&["additionalEventData", "podIdentity", "roles"])),
                esc(&get(&["outcome"]))
            );
        }
        if rows.is_empty() {
            rows.push_str(
                "<tr><td colspan=\"5\">No pod credentials issued or refused yet.</td></tr>",
            );
        }
        Ok(page(
            StatusCode::OK,
            "Pod credentials issued",
            Some(user),
            &format!(
                "<p class=\"crumbs\"><a href=\"/console/clusters?region={r}\">Clusters</a> › EKS Auth decisions</p>\
                 <form class=\"inline\" method=\"get\"><input type=\"hidden\" name=\"region\" value=\"{r}\"><label>Cluster <input name=\"cluster\" value=\"{c}\"></label> <label>Outcome <select name=\"outcome\"><option value=\"\">any</option><option>success</option><option>denied</option><option>failed</option></select></label> <button>Filter</button></form>\
                 <table><thead><tr><th>Time</th><th>Cluster</th><th>Service account</th><th>Roles</th><th>Outcome</th></tr></thead><tbody>{rows}</tbody></table>",
                r = esc(&region),
                c = esc(cluster.as_deref().unwrap_or_default())
            ),
        ))
    }
}

fn sign_in_form(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "{error}<form method=\"post\" action=\"/console/sign-in\" class=\"stack narrow\">\
         <p>Sign in with an access key of a podid IAM user (<code>podid server</code> writes the <code>admin</code> keys of each account into <code>DATA_DIR/aws/credentials</code>).</p>\
         <label>Access key ID <input name=\"accessKeyId\" autocomplete=\"username\" required></label>\
         <label>Secret access key <input name=\"secretAccessKey\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <p><button class=\"primary\">Sign in</button></p></form>"
    )
}

/// A whole page.
fn page(status: StatusCode, title: &str, user: Option<&User<'_>>, body: &str) -> Response {
    let header_bar = match user {
        Some(user) => format!(
            "<header><a class=\"brand\" href=\"/console/clusters\">podid</a><nav><a href=\"/console/clusters\">Clusters</a> <a href=\"/console/access\">Access graph</a> <a href=\"/console/audit\">Pod credentials</a></nav>\
             <form method=\"post\" action=\"/console/sign-out\" class=\"signout\">{}<span class=\"who\">{}</span> <button>Sign out</button></form></header>",
            user.csrf_field(),
            esc(user.caller().arn())
        ),
        None => "<header><span class=\"brand\">podid</span></header>".into(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · podid</title><link rel=\"stylesheet\" href=\"/console/console.css\"></head><body>{header_bar}<main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-frame-options", "DENY")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        )
        .body(Body::from(html))
        .unwrap_or_default()
}

/// To an association's page.
fn association_page(cluster: &str, id: &str, region: &str) -> Response {
    redirect(
        &format!(
            "/console/clusters/{}/associations/{}?region={}",
            url(cluster),
            url(id),
            url(region)
        ),
        None,
    )
}

fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location);
    if let Some(cookie) = cookie {
        builder = builder.header(header::SET_COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap_or_default()
}

fn text(status: StatusCode, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(message.to_owned()))
        .unwrap_or_default()
}

fn cross_site() -> Response {
    text(
        StatusCode::FORBIDDEN,
        "refused: this form was not sent from a page of this console (its form token or origin does not match); reload the page and try again",
    )
}

/// Whether the request's `Origin`, when the browser sent one, is this server (its `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// `application/x-www-form-urlencoded` (and query strings): the first value of each name.
fn parse_form(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in bytes.split(|b| *b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let key = decode(halves.next().unwrap_or_default());
        let value = decode(halves.next().unwrap_or_default());
        out.entry(key).or_insert(value);
    }
    out
}

/// A form component: `+` is a space, then percent-decoding as the signature's (invalid UTF-8
/// replaced).
fn decode(bytes: &[u8]) -> String {
    podid_sigv4::percent_decoded(&String::from_utf8_lossy(bytes).replace('+', " "))
}

/// HTML-escaped text.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with its `backticked` spans as `<code>`.
fn code_spans(text: &str) -> String {
    esc(text)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

/// A query-string component.
fn url(text: &str) -> String {
    podid_sigv4::uri_encoded(text)
}

/// What the user reads of an error: AWS's code and text, as EKS's API answers them.
fn message(e: &Error) -> String {
    let api = crate::errors::ApiError::from(e.clone()).for_rest_json();
    format!("{}: {}", api.code, api.message)
}

fn status_of(e: &Error) -> StatusCode {
    StatusCode::from_u16(crate::errors::ApiError::from(e.clone()).status)
        .unwrap_or(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_html_escapes() {
        let form = parse_form(b"a=1+2&b=%3Cx%3E&a=second&c=%zz");
        assert_eq!(form["a"], "1 2");
        assert_eq!(form["b"], "<x>");
        assert_eq!(form["c"], "%zz");
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn an_origin_must_be_this_server() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            "127.0.0.1:4599".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(
            same_origin(&headers),
            "no Origin: a same-origin GET form or an old browser"
        );
        headers.insert(
            header::ORIGIN,
            "http://127.0.0.1:4599"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            "http://evil.example"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(!same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            "null".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(!same_origin(&headers));
    }
}
