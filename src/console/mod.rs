//! The web console: executions, their histories and graphs, and the workflows, served
//! by an [axum] [`Router`] from inside your program or by `workflow console`.
//!
//! ```no_run
//! # async fn f(runtime: workflow::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use workflow::console::Console;
//!
//! // Beside your own routes, under a prefix:
//! let app = axum::Router::new().nest("/workflows-console", workflow::console::router(&runtime));
//! # drop(app);
//! // Or on its own port, on 127.0.0.1 (another address needs `allow_remote` and a token):
//! Console::new(&runtime).serve("127.0.0.1:7878".parse()?).await?;
//! # Ok(()) }
//! ```
//!
//! Pages are rendered on the server (no JavaScript, nothing fetched from elsewhere, so
//! the console works offline):
//!
//! - `/executions`: every execution, newest first, filtered by workflow, status and
//!   top-level only, fifty a page; it reloads itself every few seconds.
//! - `/executions/{id}`: an execution's status, input, output or error, timings, its
//!   workflow's graph with the states it went through highlighted (the one it is in
//!   amber), links to its parent and to each child, and its history.
//! - `/workflows` and `/workflows/{name}`: a workflow's graph, its ASL (`asl.json`), a
//!   form to start it, and its executions.
//!
//! # Actions and security
//!
//! A console over a runtime can start, cancel and [redrive](workflow_runtime::Runtime::redrive)
//! executions ([`Console::read_only`] turns that off; the console `workflow console`
//! serves over a store file is read-only, since another process owns the file). Actions
//! are `POST` forms carrying a token the console made when it started (a cross-site
//! page cannot read it), so another site cannot make a visitor's browser act. Every
//! value from a workflow (inputs, outputs, errors, ids) is escaped as text.
//!
//! The same actions are a small JSON API for scripts and for `workflow redrive|cancel
//! --console URL`: `POST /api/redrive` and `POST /api/cancel` with `{"id": "…"}`. They
//! take JSON only, which a page of another site cannot send here (a form cannot, and a
//! script would need a CORS preflight the console never answers).
//!
//! [`Console::serve`] binds loopback addresses only, unless told [`allow_remote`](Console::allow_remote)
//! and given a [`token`](Console::token): then every request must carry it, as
//! `Authorization: Bearer {token}` or a cookie set by opening `/?token={token}` once.

mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, OriginalUri, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use workflow_runtime::{Catalog, ExecutionId, Json, RedriveError, Runtime, StartError, StoreError};

use crate::inspect::Details;

/// How many executions a page of the list shows.
const PAGE: usize = 50;

/// The cookie that carries the token, once `/?token=…` has set it.
const TOKEN_COOKIE: &str = "workflow_console_token";

/// The console over `runtime`, with actions: `Console::new(runtime).router()`.
pub fn router(runtime: &Runtime) -> Router {
    Console::new(runtime).router()
}

/// A console over a runtime: what it shows, what it allows, where it listens.
#[derive(Clone, Debug)]
#[must_use]
pub struct Console {
    runtime: Runtime,
    catalog: Catalog,
    actions: bool,
    token: Option<String>,
    allow_remote: bool,
}

/// Why [`Console::serve`] did not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The address is not a loopback address, and remote access was not asked for.
    #[error("{addr} is not a loopback address; serving the console beyond this machine needs `allow_remote` (`--allow-remote`) and a token")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Remote access was asked for without a token.
    #[error("serving the console on {addr} needs a token (`--token` or WORKFLOW_CONSOLE_TOKEN): every request must carry it")]
    NoToken {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The token is too short to resist guessing.
    #[error("the console token must be at least 16 characters")]
    WeakToken,
    /// The address could not be bound, or serving failed.
    #[error("cannot serve the console on {addr}: {source}")]
    Io {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Console {
    /// A console over `runtime`, with its workflows and with actions.
    pub fn new(runtime: &Runtime) -> Self {
        Console {
            runtime: runtime.clone(),
            catalog: runtime.catalog().clone(),
            actions: true,
            token: None,
            allow_remote: false,
        }
    }

    /// The workflows whose graphs it draws, instead of the runtime's (a console over a
    /// read-only store knows the workflows its program links).
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// Shows, never acts: no start, cancel or redrive.
    pub fn read_only(mut self) -> Self {
        self.actions = false;
        self
    }

    /// Every request must carry `token` (see the [module docs](self)).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Lets [`serve`](Self::serve) bind an address other than loopback, which also
    /// needs a [`token`](Self::token).
    pub fn allow_remote(mut self) -> Self {
        self.allow_remote = true;
        self
    }

    /// The console's routes.
    pub fn router(self) -> Router {
        let state = Arc::new(Shared {
            runtime: self.runtime,
            catalog: self.catalog,
            actions: self.actions,
            csrf: random_token(),
            token: self.token,
        });
        Router::new()
            .route("/", get(|| async { Redirect::to("executions") }))
            .route("/executions", get(list))
            .route("/executions/{*id}", get(execution))
            .route("/workflows", get(workflows))
            .route("/workflows/{name}", get(workflow))
            .route("/workflows/{name}/asl.json", get(asl))
            .route("/workflows/{name}/graph.svg", get(graph))
            .route("/actions/start", post(start))
            .route("/actions/cancel", post(cancel))
            .route("/actions/redrive", post(redrive))
            .route("/api/redrive", post(api_redrive))
            .route("/api/cancel", post(api_cancel))
            .layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
            .with_state(state)
    }

    /// Serves the console on `addr` until the process gets Ctrl-C.
    ///
    /// Refuses an address that is not loopback unless [`allow_remote`](Self::allow_remote)
    /// was called and a token of at least 16 characters given.
    pub async fn serve(self, addr: SocketAddr) -> Result<(), ConsoleError> {
        let listener = self.bind(addr).await?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| ConsoleError::Io { addr, source })
    }

    /// Checks the address against the security rules and binds it.
    pub async fn bind(&self, addr: SocketAddr) -> Result<tokio::net::TcpListener, ConsoleError> {
        if !addr.ip().is_loopback() {
            if !self.allow_remote {
                return Err(ConsoleError::NotLoopback { addr });
            }
            match &self.token {
                None => return Err(ConsoleError::NoToken { addr }),
                Some(t) if t.len() < 16 => return Err(ConsoleError::WeakToken),
                Some(_) => {}
            }
        }
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ConsoleError::Io { addr, source })
    }
}

/// What every handler reads.
struct Shared {
    runtime: Runtime,
    catalog: Catalog,
    actions: bool,
    /// The value every action's form carries back.
    csrf: String,
    token: Option<String>,
}

type AppState = State<Arc<Shared>>;

fn random_token() -> String {
    let mut bytes = [0u8; 16];
    // Without the OS's randomness there is no safe token: refuse every action instead.
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn auth(State(state): AppState, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = cookie(headers, TOKEN_COOKIE);
    if bearer
        .or(cookie.as_deref())
        .is_some_and(|t| same_secret(t, token))
    {
        return next.run(request).await;
    }
    let query = Query::<TokenQuery>::try_from_uri(request.uri()).ok();
    if let Some(given) = query.and_then(|q| q.0.token) {
        if same_secret(&given, token) {
            let path = request.uri().path().to_owned();
            let cookie = format!("{TOKEN_COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
            return ([(header::SET_COOKIE, cookie)], Redirect::to(&path)).into_response();
        }
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "this console needs its token: `Authorization: Bearer …`, or open /?token=… once",
    )
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A page that could not be made: a status and what to tell the user.
struct Failure(StatusCode, String);

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, pages::failure(self.0, &self.1)).into_response()
    }
}

/// The list's filters, as the form sends them (empty fields are no filter).
#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    pub(crate) workflow: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) since: String,
    #[serde(default)]
    pub(crate) top: Option<String>,
    #[serde(default)]
    pub(crate) page: usize,
}

async fn list(
    State(state): AppState,
    Base(base): Base,
    Query(query): Query<ListQuery>,
) -> Result<Response, Failure> {
    let mut filter = workflow_runtime::ExecutionFilter::new()
        .newest_first()
        .offset(query.page * PAGE)
        .limit(PAGE + 1);
    if !query.workflow.is_empty() {
        filter = filter.workflow(query.workflow.clone());
    }
    if !query.status.is_empty() {
        let status = crate::inspect::parse_status(&query.status).ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("no status `{}`", query.status),
            )
        })?;
        filter = filter.status(status);
    }
    if !query.since.trim().is_empty() {
        let at = crate::inspect::parse_since(&query.since).ok_or_else(|| {
            let message = format!(
                "since `{}` is neither a duration (`90s`, `2h`) nor a time (`2026-12-03T10:00:00Z`)",
                query.since
            );
            Failure(StatusCode::BAD_REQUEST, message)
        })?;
        filter = filter.since(at);
    }
    if query.top.is_some() {
        filter = filter.top_level();
    }
    let mut listing = state.runtime.list(filter).await?;
    let more = listing.executions.len() > PAGE;
    listing.executions.truncate(PAGE);
    Ok(pages::list(&base, &state.catalog, &query, &listing, more).into_response())
}

async fn execution(
    State(state): AppState,
    Base(base): Base,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let details = Details::read(&state.runtime, &ExecutionId::from(id)).await?;
    let graph = state.catalog.graph(&details.record.workflow);
    let csrf = state.actions.then_some(&*state.csrf);
    Ok(pages::execution(&base, &details, graph, csrf).into_response())
}

async fn workflows(State(state): AppState, Base(base): Base) -> Response {
    pages::workflows(&base, &state.catalog).into_response()
}

fn known(state: &Shared, name: &str) -> Result<&'static workflow_runtime::StateGraph, Failure> {
    state.catalog.graph(name).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no workflow named `{name}` is linked into this console"),
        )
    })
}

async fn workflow(
    State(state): AppState,
    Base(base): Base,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let graph = known(&state, &name)?;
    let filter = workflow_runtime::ExecutionFilter::new()
        .workflow(name.clone())
        .newest_first()
        .limit(PAGE);
    let listing = state.runtime.list(filter).await?;
    let can_start = state.actions && state.runtime.catalog().graph(&name).is_some();
    let csrf = can_start.then_some(&*state.csrf);
    Ok(pages::workflow(&base, graph, &listing, csrf).into_response())
}

async fn asl(State(state): AppState, Path(name): Path<String>) -> Result<Response, Failure> {
    known(&state, &name)?;
    let machine = state.catalog.asl(&name).map(|m| m.to_pretty());
    let disposition = format!(
        "attachment; filename=\"{}.asl.json\"",
        name.replace('"', "")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        machine.unwrap_or_default(),
    )
        .into_response())
}

async fn graph(State(state): AppState, Path(name): Path<String>) -> Result<Response, Failure> {
    let graph = known(&state, &name)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], graph.to_svg()).into_response())
}

#[derive(Deserialize)]
struct StartForm {
    csrf: String,
    workflow: String,
    input: String,
}

#[derive(Deserialize)]
struct IdForm {
    csrf: String,
    id: String,
}

/// Refuses an action whose form does not carry this console's token, or any action on
/// a read-only console.
fn allowed(state: &Shared, csrf: &str) -> Result<(), Failure> {
    if !state.actions {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "this console is read-only".into(),
        ));
    }
    if !same_secret(csrf, &state.csrf) {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "the form's token is not this console's (reload the page and try again)".into(),
        ));
    }
    Ok(())
}

/// Where the page of execution `id` is.
pub(crate) fn execution_href(base: &str, id: &ExecutionId) -> String {
    format!("{base}/executions/{}", pages::path(id.as_str()))
}

async fn start(
    State(state): AppState,
    Base(base): Base,
    Form(form): Form<StartForm>,
) -> Result<Response, Failure> {
    allowed(&state, &form.csrf)?;
    let input = Json::parse(form.input).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the input is not JSON: {e}"),
        )
    })?;
    let id = state
        .runtime
        .start_json(&form.workflow, input)
        .await
        .map_err(|e| {
            let status = match e {
                StartError::InvalidInput { .. } | StartError::NotRegistered { .. } => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Failure(status, e.to_string())
        })?;
    Ok(Redirect::to(&execution_href(&base, &id)).into_response())
}

async fn cancel(
    State(state): AppState,
    Base(base): Base,
    Form(form): Form<IdForm>,
) -> Result<Response, Failure> {
    allowed(&state, &form.csrf)?;
    let id = ExecutionId::from(form.id);
    state.runtime.cancel(&id).await?;
    Ok(Redirect::to(&execution_href(&base, &id)).into_response())
}

async fn redrive(
    State(state): AppState,
    Base(base): Base,
    Form(form): Form<IdForm>,
) -> Result<Response, Failure> {
    allowed(&state, &form.csrf)?;
    let id = ExecutionId::from(form.id);
    state
        .runtime
        .redrive(&id)
        .await
        .map_err(|e| Failure(redrive_status(&e), e.to_string()))?;
    Ok(Redirect::to(&execution_href(&base, &id)).into_response())
}

/// The body of the JSON actions (`workflow redrive|cancel --console URL`).
#[derive(Deserialize)]
struct IdBody {
    id: String,
}

/// `POST /api/redrive` with `{"id": …}`: what the CLI calls. JSON only, which a
/// cross-site form cannot send and a cross-site script cannot send without a CORS
/// preflight the console never grants: the form token is not needed.
async fn api_redrive(
    State(state): AppState,
    axum::Json(body): axum::Json<IdBody>,
) -> Result<Response, ApiFailure> {
    if !state.actions {
        return Err(ApiFailure(
            StatusCode::FORBIDDEN,
            "this console is read-only".into(),
        ));
    }
    let redrive = state
        .runtime
        .redrive(&ExecutionId::from(body.id))
        .await
        .map_err(|e| ApiFailure(redrive_status(&e), e.to_string()))?;
    let children: Vec<&str> = redrive.children.iter().map(ExecutionId::as_str).collect();
    let answer = serde_json::json!({
        "id": redrive.id.as_str(),
        "count": redrive.count,
        "children": children,
    });
    Ok(axum::Json(answer).into_response())
}

/// `POST /api/cancel` with `{"id": …}`.
async fn api_cancel(
    State(state): AppState,
    axum::Json(body): axum::Json<IdBody>,
) -> Result<Response, ApiFailure> {
    if !state.actions {
        return Err(ApiFailure(
            StatusCode::FORBIDDEN,
            "this console is read-only".into(),
        ));
    }
    let id = ExecutionId::from(body.id);
    let cancelled = state
        .runtime
        .cancel(&id)
        .await
        .map_err(|e| ApiFailure(Failure::from(e).0, format!("cannot cancel `{id}`")))?;
    Ok(
        axum::Json(serde_json::json!({ "id": id.as_str(), "cancelled": cancelled }))
            .into_response(),
    )
}

/// An action of the JSON API that failed: `{"error": …}`.
struct ApiFailure(StatusCode, String);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn redrive_status(e: &RedriveError) -> StatusCode {
    match e {
        RedriveError::NotFound { .. } => StatusCode::NOT_FOUND,
        RedriveError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::CONFLICT,
    }
}

/// Where the console's routes are mounted (`""` at the root; `/ops` for a console
/// nested under `/ops`): links and redirects start with it.
pub(crate) struct Base(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let inner = parts.uri.path();
        let full = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(inner, |o| o.0.path());
        Ok(Base(full.strip_suffix(inner).unwrap_or("").to_owned()))
    }
}
