//! A small JSON API on em-http, and a tour of its async style:
//! `http_api --listen ADDR` (default 127.0.0.1:8093). Prints
//! `listening on ADDR` once ready; stops on SIGINT/SIGTERM. Every route is
//! wrapped in the `Logging` (one line per request on stderr, with
//! `RUST_LOG=info`) and `Gzip` middleware.
//!
//! - `GET /items`: every item, as a JSON array.
//! - `POST /items`: adds the JSON object in the body (`400` if it is not
//!   one); answers `201` with the item and its new `id`.
//! - `GET /items/{id}`: one item, or `404`.
//! - `GET /slow?ms=N`: answers after N ms (at most 10 s) on a timer; the
//!   reactor serves others meanwhile.
//! - `GET /hash?n=N`: N rounds of hashing (at most 10^8) on em's thread
//!   pool (`em::defer_async`), so the reactor never blocks.
//! - `GET /stream?n=N`: the numbers 1 to N (default 100), one a line, as a
//!   chunked body written at the client's pace.
//! - `GET /events`: server-sent events, a `tick` every 500 ms, 10 in all.
//! - `GET /upstream?url=URL`: fetches URL with em's HTTP client (on the
//!   same reactor, never blocking it) and answers its status, length and
//!   content type as JSON; `502` with the client's error if it fails.
//!
//! ```text
//! curl -s localhost:8093/items -d '{"name":"apple"}'
//! curl -s localhost:8093/items/1
//! curl -sN localhost:8093/events
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use em_http::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use em_http::middleware::{Gzip, Logging};
use em_http::sse::{self, Event};
use em_http::{Body, HandlerExt, ResponseBody};
use serde_json::{json, Value};

/// Serves a small JSON API with timers, deferred work, streams and events.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8093")]
    listen: String,
}

/// The items, by id. Shared by every request through an `Rc<RefCell<…>>`:
/// the reactor runs them all on one thread, so no lock is needed (and a
/// borrow is never held across an `.await`).
#[derive(Default)]
struct Store {
    next_id: u64,
    items: BTreeMap<u64, Value>,
    /// The client for `/upstream`: one per reactor, its pool shared by
    /// every request.
    upstream: em_http::Client,
}

type Shared = Rc<RefCell<Store>>;

/// The longest `/slow` waits.
const MAX_SLOW_MS: u64 = 10_000;
/// The most rounds `/hash` runs.
const MAX_HASH_ROUNDS: u64 = 100_000_000;
/// The most lines `/stream` writes.
const MAX_STREAM_LINES: u64 = 1_000_000;

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    json_response(status, &json!({ "error": message.into() }))
}

/// The value of `name` in the request's query string, parsed as a number.
fn query_number(request: &Request<Body>, name: &str) -> Option<Result<u64, ()>> {
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.parse().map_err(drop))
    })
}

async fn route(store: Shared, request: Request<Body>) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["items"]) => list(&store),
        (&Method::POST, ["items"]) => create(&store, request).await,
        (&Method::GET, ["items", id]) => match id.parse::<u64>() {
            Ok(id) => show(&store, id),
            Err(_) => error(StatusCode::NOT_FOUND, "no such item"),
        },
        (&Method::GET, ["slow"]) => slow(&request).await,
        (&Method::GET, ["hash"]) => hash(&request).await,
        (&Method::GET, ["stream"]) => stream(&request),
        (&Method::GET, ["events"]) => events(),
        (&Method::GET, ["upstream"]) => upstream(&store, &request).await,
        (
            _,
            ["items"] | ["items", _] | ["slow"] | ["hash"] | ["stream"] | ["events"] | ["upstream"],
        ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// `/upstream?url=URL`: the reactor goes on serving while the upstream
/// answers (em-http-request's point: "Net::HTTP => EM::HttpRequest").
async fn upstream(store: &Shared, request: &Request<Body>) -> Response<ResponseBody> {
    let target = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "url")
            .map(|(_, v)| v.into_owned())
    });
    let Some(target) = target else {
        return error(StatusCode::BAD_REQUEST, "give ?url=URL");
    };
    let client = store.borrow().upstream.clone();
    let response = match client.get(&target).send().await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match response.bytes().await {
        Ok(body) => json_response(
            StatusCode::OK,
            &json!({ "url": target, "status": status, "bytes": body.len(), "content_type": content_type }),
        ),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

fn list(store: &Shared) -> Response<ResponseBody> {
    let items: Vec<Value> = store.borrow().items.values().cloned().collect();
    json_response(StatusCode::OK, &Value::Array(items))
}

fn show(store: &Shared, id: u64) -> Response<ResponseBody> {
    match store.borrow().items.get(&id) {
        Some(item) => json_response(StatusCode::OK, item),
        None => error(StatusCode::NOT_FOUND, "no such item"),
    }
}

async fn create(store: &Shared, request: Request<Body>) -> Response<ResponseBody> {
    let bytes = match request.into_body().bytes().await {
        Ok(bytes) => bytes,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let mut item = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return error(StatusCode::BAD_REQUEST, "expected a JSON object"),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    let mut store = store.borrow_mut();
    store.next_id += 1;
    let id = store.next_id;
    item.insert("id".to_owned(), Value::from(id));
    let item = Value::Object(item);
    store.items.insert(id, item.clone());
    let mut response = json_response(StatusCode::CREATED, &item);
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::try_from(format!("/items/{id}")).expect("a path"),
    );
    response
}

async fn slow(request: &Request<Body>) -> Response<ResponseBody> {
    let ms = match query_number(request, "ms") {
        None => 1000,
        Some(Ok(ms)) if ms <= MAX_SLOW_MS => ms,
        Some(_) => return error(StatusCode::BAD_REQUEST, "ms must be 0 to 10000"),
    };
    em::sleep(Duration::from_millis(ms)).await;
    json_response(StatusCode::OK, &json!({ "slept_ms": ms }))
}

/// `rounds` rounds of std's SipHash over a running value: work that keeps
/// a CPU busy, which must not run on the reactor thread.
fn busy_hash(rounds: u64) -> u64 {
    let mut value = 0u64;
    for i in 0..rounds {
        let mut hasher = DefaultHasher::new();
        (value, i).hash(&mut hasher);
        value = hasher.finish();
    }
    value
}

async fn hash(request: &Request<Body>) -> Response<ResponseBody> {
    let n = match query_number(request, "n") {
        None => 1_000_000,
        Some(Ok(n)) if n <= MAX_HASH_ROUNDS => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "n must be 0 to 100000000"),
    };
    match em::defer_async(move || busy_hash(n)).await {
        Ok(hash) => json_response(
            StatusCode::OK,
            &json!({ "n": n, "hash": format!("{hash:016x}") }),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn stream(request: &Request<Body>) -> Response<ResponseBody> {
    let n = match query_number(request, "n") {
        None => 100,
        Some(Ok(n)) if n <= MAX_STREAM_LINES => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "n must be 0 to 1000000"),
    };
    let (writer, body) = ResponseBody::channel();
    let writing = em::spawn(async move {
        for i in 1..=n {
            // At the client's pace: wait while its output is backed up.
            writer.ready().await;
            if writer.send(format!("{i}\n")).is_err() {
                return; // The client is gone.
            }
        }
        // Dropping the writer ends the body.
    });
    if let Err(e) = writing {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn events() -> Response<ResponseBody> {
    let (mut events, response) = sse::stream();
    events.keep_alive(Duration::from_secs(15));
    let ticking = em::spawn(async move {
        for tick in 1..=10u32 {
            em::sleep(Duration::from_millis(500)).await;
            let event = Event::new(json!({ "tick": tick }).to_string())
                .event("tick")
                .id(tick.to_string());
            if events.send(&event).is_err() {
                return; // The client is gone.
            }
        }
        // Dropping `events` ends the stream.
    });
    if let Err(e) = ticking {
        return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    }
    response
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    em_examples::log_to_stderr();
    let args = Args::parse();
    em::run(move || {
        let store = Shared::default();
        let api = move |request: Request<Body>| route(store.clone(), request);
        let server = em_http::serve(
            args.listen.as_str(),
            api.with(Gzip::default()).with(Logging),
        )?;
        em_examples::stop_on_signal()?;
        em_examples::out!("listening on {}", server.local_addr());
        Ok(())
    })?;
    Ok(())
}
